#!/usr/bin/env python3
"""Write a single-layer OCI image as an OCI image-layout tarball (oci-layout,
index.json, blobs/sha256/{layer,config,manifest}), importable with
`ctr images import`. Used by scripts/mkimages.sh.

  oci-image.py OUT.tar NAME [--cmd ARG]... [--entrypoint ARG]...
               [--file DEST=SRC]... [--busybox BUSYBOX]
"""
import argparse
import hashlib
import io
import json
import os
import subprocess
import tarfile

MTIME = 0  # reproducible layers


def add_dir(tar, path, mode=0o755):
    ti = tarfile.TarInfo(path)
    ti.type = tarfile.DIRTYPE
    ti.mode = mode
    ti.mtime = MTIME
    tar.addfile(ti)


def add_bytes(tar, path, data, mode=0o644):
    ti = tarfile.TarInfo(path)
    ti.size = len(data)
    ti.mode = mode
    ti.mtime = MTIME
    tar.addfile(ti, io.BytesIO(data))


def add_symlink(tar, path, target):
    ti = tarfile.TarInfo(path)
    ti.type = tarfile.SYMTYPE
    ti.linkname = target
    ti.mode = 0o777
    ti.mtime = MTIME
    tar.addfile(ti)


def layer(files, busybox):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = ["bin", "dev", "etc", "proc", "sys", "root", "var", "run"]
        for d in dirs:
            add_dir(tar, d)
        add_dir(tar, "tmp", 0o1777)
        add_bytes(tar, "etc/passwd",
                  b"root:x:0:0:root:/root:/bin/sh\n"
                  b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
        add_bytes(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")
        for dest, src in files:
            with open(src, "rb") as f:
                add_bytes(tar, dest.lstrip("/"), f.read(), 0o755)
        if busybox:
            with open(busybox, "rb") as f:
                add_bytes(tar, "bin/busybox", f.read(), 0o755)
            applets = subprocess.run([busybox, "--list"], check=True,
                                     capture_output=True, text=True).stdout.split()
            for a in sorted(set(applets)):
                if a != "busybox" and "/" not in a:
                    add_symlink(tar, "bin/" + a, "busybox")
    return buf.getvalue()


def blob(out, data, media_type):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    add_bytes(out, "blobs/sha256/" + digest.split(":")[1], data)
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("name")
    p.add_argument("--cmd", action="append", default=[])
    p.add_argument("--entrypoint", action="append", default=[])
    p.add_argument("--file", action="append", default=[])
    p.add_argument("--busybox")
    a = p.parse_args()
    files = [f.split("=", 1) for f in a.file]
    layer_tar = layer(files, a.busybox)
    diff_id = "sha256:" + hashlib.sha256(layer_tar).hexdigest()
    cfg = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
           "WorkingDir": "/"}
    if a.cmd:
        cfg["Cmd"] = a.cmd
    if a.entrypoint:
        cfg["Entrypoint"] = a.entrypoint
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "oxrun scripts/mkimages.sh"}],
    }
    # Per process: two test binaries may build the same image at once.
    tmp = "%s.tmp.%d" % (a.out, os.getpid())
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as out:
        add_bytes(out, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        ldesc = blob(out, layer_tar, "application/vnd.oci.image.layer.v1.tar")
        cdesc = blob(out, json.dumps(config, sort_keys=True).encode(),
                     "application/vnd.oci.image.config.v1+json")
        manifest = {"schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": cdesc, "layers": [ldesc]}
        mdesc = blob(out, json.dumps(manifest, sort_keys=True).encode(),
                     "application/vnd.oci.image.manifest.v1+json")
        mdesc["platform"] = {"architecture": "amd64", "os": "linux"}
        mdesc["annotations"] = {
            "io.containerd.image.name": a.name,
            "org.opencontainers.image.ref.name": a.name.rsplit(":", 1)[1],
        }
        index = {"schemaVersion": 2,
                 "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [mdesc]}
        add_bytes(out, "index.json", json.dumps(index, sort_keys=True).encode())
    os.replace(tmp, a.out)


if __name__ == "__main__":
    main()
