//! Unit tests of the SSH transport (the real-sshd tests are tests/ssh.rs).

use super::*;

fn t(user: &str, host: &str, port: u16) -> SshTarget {
    SshTarget {
        user: user.into(),
        host: host.into(),
        port,
    }
}

#[test]
fn targets_parse_with_defaults() {
    assert_eq!(SshTarget::parse("pve1").unwrap(), t("root", "pve1", 22));
    assert_eq!(
        SshTarget::parse("admin@pve1").unwrap(),
        t("admin", "pve1", 22)
    );
    assert_eq!(
        SshTarget::parse("admin@10.0.0.5:2222").unwrap(),
        t("admin", "10.0.0.5", 2222)
    );
    assert_eq!(
        SshTarget::parse("pve1.lan:22").unwrap(),
        t("root", "pve1.lan", 22)
    );
    assert_eq!("pve1:7".parse::<SshTarget>().unwrap(), t("root", "pve1", 7));
}

#[test]
fn ipv6_targets_use_brackets_for_ports() {
    assert_eq!(
        SshTarget::parse("[::1]:2222").unwrap(),
        t("root", "::1", 2222)
    );
    assert_eq!(
        SshTarget::parse("u@[fe80::1]").unwrap(),
        t("u", "fe80::1", 22)
    );
    assert_eq!(
        SshTarget::parse("fe80::1").unwrap(),
        t("root", "fe80::1", 22)
    );
    let v6 = SshTarget::parse("[::1]:2222").unwrap();
    assert_eq!(v6.to_string(), "root@[::1]:2222");
    assert_eq!(v6.known_hosts_name(), "[::1]:2222");
    assert_eq!(t("root", "pve1", 22).known_hosts_name(), "pve1");
    assert_eq!(t("root", "pve1", 2200).known_hosts_name(), "[pve1]:2200");
}

#[test]
fn junk_targets_are_refused_with_a_reason() {
    for (input, why) in [
        ("", "empty"),
        ("root@", "host is empty"),
        ("@pve1", "user name before '@' is empty"),
        ("a@b@c", "more than one '@'"),
        ("pve1:", "port \"\""),
        ("pve1:0", "port \"0\""),
        ("pve1:65536", "port \"65536\""),
        ("pve1:+22", "port \"+22\""),
        ("pve1:ssh", "port \"ssh\""),
        ("pve 1", "whitespace"),
        ("[::1", "no closing"),
        ("[pve1]:22", "not an IPv6 address"),
        ("[::1]x", "only ':PORT'"),
        ("fe80::1:22:zz", "in brackets"),
        ("-oProxyCommand=x", "not a host name"),
        ("ro;ot@pve1", "user name may only"),
        ("pve1/x", "not a host name"),
    ] {
        let err = SshTarget::parse(input).unwrap_err().to_string();
        assert!(err.contains(why), "{input:?}: {err}");
        assert!(err.contains("[user@]host[:port]"), "{input:?}: {err}");
    }
}

#[test]
fn fingerprints_match_ssh_keygen() {
    // `ssh-keygen -lf` output for these public keys.
    let ed = "AAAAC3NzaC1lZDI1NTE5AAAAIEV9jrlnUCJHVKIWZMwUDG0wKoknpSSgAgvl8N0krTUX";
    let blob = B64.decode(ed).unwrap();
    assert_eq!(
        fingerprint(&blob),
        "SHA256:ubm68nEYhsfrGw3iLG2CRv5azXi8uJr43DKO4/+hXH8"
    );
    assert_eq!(key_type(&blob), "ssh-ed25519");
    assert_eq!(key_type_label(key_type(&blob)), "ED25519");
    let ec = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBFAbx6IpUUjIJNNxqOZ1VUi8CJ27ik\
              476tFRMLTzYLQtL/sseGsBhwiJi39iJkh4h2rsgtcn1KTZrPIYsiFwtz8=";
    let blob = B64.decode(ec).unwrap();
    assert_eq!(
        fingerprint(&blob),
        "SHA256:hMD3Y/qu3CGzUpEwZI2UEybJyFKYgOm3VCFp/npHLBM"
    );
    assert_eq!(key_type_label(key_type(&blob)), "ECDSA");
    assert_eq!(B64.encode(&blob), ec);
    assert_eq!(key_type(b"\0\0"), "unknown");
}

#[test]
fn encrypted_keys_are_recognised() {
    let openssh = |cipher: &str| {
        let mut raw = b"openssh-key-v1\0".to_vec();
        raw.extend((cipher.len() as u32).to_be_bytes());
        raw.extend(cipher.as_bytes());
        raw.extend([0u8; 20]);
        format!(
            "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
            B64.encode(&raw)
        )
    };
    assert!(key_is_encrypted(&openssh("aes256-ctr")));
    assert!(!key_is_encrypted(&openssh("none")));
    assert!(key_is_encrypted(
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
    ));
    assert!(!key_is_encrypted("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n"));
}

#[test]
fn seconds_print_briefly() {
    assert_eq!(fmt_secs(Duration::from_secs(5)), "5 s");
    assert_eq!(fmt_secs(Duration::from_millis(300)), "0.3 s");
    assert_eq!(fmt_secs(Duration::from_millis(1250)), "1.25 s");
}

#[test]
fn secrets_do_not_debug_print() {
    assert_eq!(
        format!("{:?}", Secret(String::from("hunter2").into())),
        "***"
    );
}
