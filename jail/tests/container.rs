//! Root tests: containers from a busybox rootfs, each in fresh namespaces.

mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use common::{can_run, chain, spec_json, text, Bundle, Jail};
use hull_jail::{Container, ExitStatus, WaitpidReaper};

#[test]
fn exit_codes_come_back() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    assert_eq!(
        jail.run(&bundle, &spec_json("exit 0")).status,
        ExitStatus::Exited(0)
    );
    assert_eq!(jail.run(&bundle, &spec_json("exit 7")).status.code(), 7);

    let mut c = jail.create(&bundle, "killed", &spec_json("exec sleep 1000"));
    c.start().unwrap();
    // An init without a SIGTERM handler ignores SIGTERM: callers see that here.
    assert!(!c.init().catches(libc::SIGTERM).unwrap());
    c.init().signal(libc::SIGKILL).unwrap();
    let status = c.init().wait().unwrap();
    assert_eq!(status, ExitStatus::Signaled(9));
    assert_eq!(status.code(), 137);
    c.destroy().unwrap();
}

#[test]
fn stdout_and_stderr_stay_apart() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let out = jail.run(&bundle, &spec_json("echo to-out; echo to-err >&2"));
    assert_eq!(text(&out.stdout), "to-out\n");
    assert_eq!(text(&out.stderr), "to-err\n");
}

#[test]
fn stdin_is_echoed_by_cat() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut c = jail.create(&bundle, "cat", &spec_json("cat"));
    c.start().unwrap();
    let mut stdin = c.init().stdio().stdin.take().unwrap();
    stdin.write_all(b"hello through the jail\n").unwrap();
    drop(stdin);
    let out = c.init().wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "hello through the jail\n");
    assert_eq!(out.status.code(), 0);
    c.destroy().unwrap();
}

#[test]
fn a_terminal_reports_its_size_and_resizes() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut v = spec_json("stty size; read line; stty size; tty");
    v["process"]["terminal"] = serde_json::json!(true);
    v["process"]["consoleSize"] = serde_json::json!({"height": 24, "width": 80});
    let mut c = jail.create(&bundle, "tty", &v);
    c.start().unwrap();
    let mut term = c.init().stdio().terminal.take().unwrap();
    let first = read_until(&mut term, "24 80");
    c.init().resize(40, 120).unwrap();
    term.write_all(b"go\n").unwrap();
    let rest = read_until(&mut term, "/dev/");
    let all = first + &rest;
    assert!(all.contains("24 80"), "{all:?}");
    assert!(all.contains("40 120"), "{all:?}");
    assert!(all.contains("/dev/pts/0"), "{all:?}");
    assert_eq!(c.init().wait().unwrap().code(), 0);
    c.destroy().unwrap();
}

fn read_until(f: &mut std::fs::File, needle: &str) -> String {
    let mut got = String::new();
    let mut buf = [0u8; 1024];
    while !got.contains(needle) {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    got
}

#[test]
fn env_cwd_and_user_with_extra_group() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut v = spec_json("echo $GREETING; pwd; id -u; id -g; id -G");
    v["process"]["env"] = serde_json::json!(["PATH=/bin", "GREETING=hello"]);
    v["process"]["cwd"] = serde_json::json!("/tmp/work");
    v["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000, "additionalGids": [2000]});
    let out = jail.run(&bundle, &v);
    assert_eq!(
        text(&out.stdout),
        "hello\n/tmp/work\n1000\n1000\n1000 2000\n",
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn hostname_is_set_in_a_new_uts_namespace() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let before = nix::unistd::gethostname().unwrap();
    let out = jail.run(&bundle, &spec_json("hostname"));
    assert_eq!(text(&out.stdout), "jailbox\n");
    assert_eq!(nix::unistd::gethostname().unwrap(), before);
}

#[test]
fn a_readonly_rootfs_refuses_writes() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut v = spec_json("touch /newfile");
    v["root"]["readonly"] = serde_json::json!(true);
    let out = jail.run(&bundle, &v);
    assert_ne!(out.status.code(), 0);
    assert!(
        text(&out.stderr).contains("Read-only file system"),
        "{}",
        text(&out.stderr)
    );
    assert!(!bundle.rootfs().join("newfile").exists());
    // The same spec without readonly writes.
    let out = jail.run(&bundle, &spec_json("touch /newfile"));
    assert_eq!(out.status.code(), 0);
    assert!(bundle.rootfs().join("newfile").exists());
}

#[test]
fn masked_paths_are_unreadable() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut v =
        spec_json("cat /etc/secret; ls /opt/hidden; echo done; echo x > /proc/sys/kernel/hostname");
    v["linux"]["maskedPaths"] =
        serde_json::json!(["/etc/secret", "/opt/hidden", "/proc/kcore", "/nonexistent"]);
    let out = jail.run(&bundle, &v);
    assert_eq!(text(&out.stdout), "done\n");
    // readonlyPaths: /proc/sys is read-only.
    assert!(
        text(&out.stderr).contains("Read-only file system"),
        "{}",
        text(&out.stderr)
    );
    // The host file is untouched.
    let secret = std::fs::read_to_string(bundle.rootfs().join("etc/secret")).unwrap();
    assert_eq!(secret, "s3cret\n");
}

#[test]
fn dropped_capabilities_are_really_missing() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut v = spec_json("grep -E '^Cap(Eff|Prm|Bnd|Inh|Amb)' /proc/self/status");
    let two = serde_json::json!(["CAP_CHOWN", "CAP_KILL"]);
    v["process"]["capabilities"] = serde_json::json!({
        "bounding": two, "effective": two, "permitted": two, "inheritable": two, "ambient": two
    });
    let out = text(&jail.run(&bundle, &v).stdout);
    // CAP_CHOWN is bit 0, CAP_KILL bit 5.
    for set in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
        assert!(
            out.contains(&format!("{set}:\t0000000000000021")),
            "{set}: {out}"
        );
    }
}

#[test]
fn seccomp_denies_mkdir_with_eperm() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut v = spec_json("mkdir /tmp/made && echo made");
    let out = jail.run(&bundle, &v);
    assert_eq!(text(&out.stdout), "made\n");
    v["linux"]["seccomp"] = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390X"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    let out = jail.run(&bundle, &v);
    assert_eq!(text(&out.stdout), "");
    assert!(
        text(&out.stderr).contains("Operation not permitted"),
        "{}",
        text(&out.stderr)
    );
    assert_ne!(out.status.code(), 0);
}

#[test]
fn exec_joins_the_container_pid_namespace() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut c = jail.create(&bundle, "exec", &spec_json("exec sleep 1000"));
    c.start().unwrap();
    let mut p = c.exec_template();
    p.set_args(Some(vec![
        "/bin/sh".into(),
        "-c".into(),
        "cat /proc/1/comm; hostname; echo $$".into(),
    ]));
    let mut e = c.exec(&p).unwrap_or_else(|e| panic!("exec: {}", chain(&e)));
    let out = e.wait_with_output().unwrap();
    let lines: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    assert_eq!(lines[0], "sleep", "{lines:?} {}", text(&out.stderr));
    assert_eq!(lines[1], "jailbox");
    assert!(
        lines[2].parse::<i32>().unwrap() > 1,
        "pid in the container's namespace"
    );
    assert_eq!(out.status.code(), 0);
    c.destroy().unwrap();
}

#[test]
fn hooks_run_in_order() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let host_log = bundle.rootfs().join("hooklog");
    let host_hook = |name: &str| {
        serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("echo {name} >> {}", host_log.display())]
        })
    };
    let mut v = spec_json("true");
    v["hooks"] = serde_json::json!({
        "createRuntime": [{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat > {}; echo createRuntime >> {}",
                bundle.rootfs().join("state.json").display(), host_log.display())],
            "timeout": 10
        }],
        "createContainer": [host_hook("createContainer")],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo startContainer >> /hooklog"]}],
        "poststart": [host_hook("poststart")],
        "poststop": [host_hook("poststop")]
    });
    let mut c = jail.create(&bundle, "hooks", &v);
    c.start().unwrap();
    assert_eq!(c.init().wait().unwrap().code(), 0);
    c.destroy().unwrap();
    let log = std::fs::read_to_string(&host_log).unwrap();
    assert_eq!(
        log,
        "createRuntime\ncreateContainer\nstartContainer\npoststart\npoststop\n"
    );
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.rootfs().join("state.json")).unwrap())
            .unwrap();
    assert_eq!(state["id"], "hooks");
    assert_eq!(state["status"], "creating");
    assert!(state["pid"].as_i64().unwrap() > 1);
}

#[test]
fn a_failing_hook_fails_create_and_leaves_nothing() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut v = spec_json("true");
    v["hooks"] = serde_json::json!({"createRuntime": [{"path": "/bin/false"}]});
    let spec = common::spec(&v);
    let err = Container::create(
        "bad-hook",
        bundle.path(),
        spec,
        &jail.opts,
        Arc::new(WaitpidReaper),
    )
    .unwrap_err();
    assert!(
        chain(&err).contains("createRuntime hook /bin/false exited with status 1"),
        "{}",
        chain(&err)
    );
    let leftovers: Vec<_> = jail
        .cgroup_dirs()
        .into_iter()
        .filter(|d| d.join("bad-hook").exists())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_missing_program_fails_start_with_the_exec_step() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut v = spec_json("true");
    v["process"]["args"] = serde_json::json!(["no-such-program"]);
    let spec = common::spec(&v);
    let err = Container::create(
        "noprog",
        bundle.path(),
        spec,
        &jail.opts,
        Arc::new(WaitpidReaper),
    )
    .unwrap_err();
    assert!(chain(&err).contains("exec"), "{}", chain(&err));
    assert!(chain(&err).contains("no-such-program"), "{}", chain(&err));
}

#[test]
fn user_namespace_maps_ids() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut v = spec_json("cat /proc/self/uid_map /proc/self/gid_map; id -u");
    let ns = v["linux"]["namespaces"].as_array_mut().unwrap();
    ns.push(serde_json::json!({"type": "user"}));
    v["linux"]["uidMappings"] =
        serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    v["linux"]["gidMappings"] =
        serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    // sysfs cannot be mounted from a user namespace without its own net ns owner.
    let out = jail.run(&bundle, &v);
    let fields: Vec<String> = text(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(
        fields,
        ["0", "100000", "65536", "0", "100000", "65536", "0"],
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn stdout_pipe_fd_is_the_only_one_the_process_keeps() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let out = jail.run(&bundle, &spec_json("ls /proc/self/fd"));
    // 0, 1, 2 and the descriptor ls opened for the listing.
    let fds: Vec<String> = text(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert!(fds.len() <= 4, "{fds:?}");
    let _ = std::io::stdout().as_raw_fd();
}

#[test]
fn no_signal_is_ignored_or_blocked_in_the_container() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut v = spec_json("");
    v["process"]["args"] = serde_json::json!(["/bin/cat", "/proc/self/status"]);
    let out = text(&jail.run(&bundle, &v).stdout);
    assert!(out.contains("SigBlk:\t0000000000000000\n"), "{out}");
    assert!(out.contains("SigIgn:\t0000000000000000\n"), "{out}");
}

#[test]
fn a_namespace_can_be_joined_by_path() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut first = jail.create(&bundle, "first", &spec_json("exec sleep 1000"));
    first.start().unwrap();
    let uts = format!("/proc/{}/ns/uts", first.init().pid());
    let mut v = spec_json("hostname");
    v["hostname"] = serde_json::Value::Null;
    v["linux"]["namespaces"][3] = serde_json::json!({"type": "uts", "path": uts});
    let out = jail.run(&bundle, &v);
    assert_eq!(text(&out.stdout), "jailbox\n", "{}", text(&out.stderr));
    first.destroy().unwrap();
}

#[test]
fn exec_with_a_terminal() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut c = jail.create(&bundle, "exectty", &spec_json("exec sleep 1000"));
    c.start().unwrap();
    let p: oci_spec::runtime::Process = serde_json::from_value(serde_json::json!({
        "args": ["/bin/sh", "-c", "tty; stty size"], "terminal": true,
        "consoleSize": {"height": 30, "width": 100},
        "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}
    }))
    .unwrap();
    let mut e = c.exec(&p).unwrap_or_else(|e| panic!("exec: {}", chain(&e)));
    let out = text(&e.wait_with_output().unwrap().stdout);
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert!(out.contains("30 100"), "{out:?}");
    c.destroy().unwrap();
}

#[test]
fn an_init_with_a_handler_is_seen_catching() {
    if !can_run() {
        return;
    }
    let (jail, bundle) = (Jail::new(), Bundle::new());
    let mut c = jail.create(
        &bundle,
        "trap",
        &spec_json("trap 'exit 3' TERM; echo ready; while true; do sleep 1; done"),
    );
    c.start().unwrap();
    let mut out = c.init().stdio().stdout.take().unwrap();
    let mut buf = [0u8; 6];
    out.read_exact(&mut buf).unwrap();
    assert!(c.init().catches(libc::SIGTERM).unwrap());
    c.init().signal(libc::SIGTERM).unwrap();
    assert_eq!(c.init().wait().unwrap().code(), 3);
    c.destroy().unwrap();
}
