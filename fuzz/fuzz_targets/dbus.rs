//! The D-Bus message parser reads what another process (systemd, the bus
//! daemon) sends: any input must give a message or an error, never a
//! panic; a decoded message must survive re-encoding unchanged, and its
//! values must marshal to a body that reads back as the same values.
#![no_main]

use libcontainer::dbus::wire::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(head) = data.first_chunk::<16>() {
        let _ = Message::frame_len(head);
    }
    let Ok(m) = Message::decode(data) else {
        return;
    };
    let args = m.args();
    if data[0] != b'l' {
        return; // we only write little-endian
    }
    let raw = m.encode(m.serial).expect("a decoded message re-encodes");
    let again = Message::decode(&raw).expect("a re-encoded message decodes");
    assert_eq!(again, m);
    if let Ok(args) = args {
        let body = Message::default().with_args(&args);
        assert_eq!(body.signature, m.signature);
        let back = body.args().expect("marshalled values read back");
        // Compared as bytes: a NaN double is not equal to itself.
        assert_eq!(Message::default().with_args(&back).body, body.body);
    }
});
