//! Idmapped bind mounts (`idmap` / `ridmap`), runtime-spec 1.1. The mount's
//! mapping is applied as a user namespace mapping (as runc does): an id on
//! disk is read as the namespace side (containerID) and shown as the host
//! side (hostID). With the container's own user-namespace mapping this makes
//! files owned by root on disk belong to the container's root. runc 1.1.5
//! has no idmap support.

use std::os::unix::fs::MetadataExt;

use integration::*;
use serde_json::json;

fn data_dir(rt: &Runtime) -> std::path::PathBuf {
    let d = rt.scratch().join("idmap-data");
    std::fs::create_dir_all(&d).expect("mkdir");
    std::fs::write(d.join("f"), "hi\n").expect("write");
    host("chmod", &["777", d.to_str().expect("utf8")]);
    d
}

#[test]
fn idmap_mount_shows_and_writes_mapped_ids() {
    let rt = Runtime::new();
    let data = data_dir(&rt);
    let mut b = Bundle::new();
    b.config["root"]["readonly"] = json!(false);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let map = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    b.add_mount(json!({"destination": "/mnt/idm", "type": "bind", "source": data, "options": ["bind", "idmap"],
                       "uidMappings": map, "gidMappings": map}));
    b.add_mount(
        json!({"destination": "/mnt/plain", "type": "bind", "source": data, "options": ["bind"]}),
    );
    b.set_script("stat -c 'idm=%u:%g' /mnt/idm/f; stat -c 'plain=%u:%g' /mnt/plain/f; touch /mnt/idm/new && echo made");
    let id = rt.id("idmap");
    let out = rt.run_ok(&b, &id);
    // On disk: root. Through the idmapped mount: 1000.
    assert!(out.contains("idm=1000:1000"), "{out}");
    assert!(out.contains("plain=0:0"), "{out}");
    assert!(out.contains("made"), "{out}");
    let md = std::fs::metadata(data.join("new")).expect("created through the idmapped mount");
    assert_eq!(
        (md.uid(), md.gid()),
        (0, 0),
        "uid 1000 inside is uid 0 on disk"
    );
    rt.assert_no_leftovers(&b, &id);
}

/// Mappings on a bind mount without `idmap` in its options: idmapped all
/// the same, as runc 1.2+ does (not silently a plain bind).
#[test]
fn mount_mappings_without_the_option_are_idmapped() {
    let rt = Runtime::new();
    let data = data_dir(&rt);
    let mut b = Bundle::new();
    let map = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    b.add_mount(
        json!({"destination": "/mnt/idm", "type": "bind", "source": data, "options": ["bind"],
                       "uidMappings": map, "gidMappings": map}),
    );
    b.set_script("stat -c 'idm=%u:%g' /mnt/idm/f");
    let id = rt.id("idmap-noopt");
    let out = rt.run_ok(&b, &id);
    assert!(out.contains("idm=1000:1000"), "{out}");
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn idmap_defaults_to_the_containers_user_namespace() {
    let rt = Runtime::new();
    let data = data_dir(&rt);
    let mut b = Bundle::new();
    b.use_userns();
    b.add_mount(json!({"destination": "/mnt/idm", "type": "bind", "source": data, "options": ["bind", "idmap"]}));
    b.set_script("stat -c 'idm=%u:%g' /mnt/idm/f");
    let id = rt.id("idmapns");
    let out = rt.run_ok(&b, &id);
    // On-disk root is the container's root (host 100000 through the mount).
    assert!(out.contains("idm=0:0"), "{out}");
    rt.assert_no_leftovers(&b, &id);
}

#[test]
fn idmap_without_any_mapping_is_an_error() {
    let rt = Runtime::new();
    let data = data_dir(&rt);
    let mut b = Bundle::new();
    b.add_mount(json!({"destination": "/mnt/idm", "type": "bind", "source": data, "options": ["bind", "idmap"]}));
    let id = rt.id("idmapbad");
    rt.run_with(&b, &id, &[])
        .fails()
        .assert_mentions(&["mounts[", "uidMappings"]);
    rt.assert_no_leftovers(&b, &id);
}
