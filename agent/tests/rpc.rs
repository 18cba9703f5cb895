//! Every implemented RPC through the generated client, against the agent running as a
//! normal process on a Unix socket with its guest paths redirected to a temp dir.

mod common;

use std::time::Duration;

use common::{code_of, ctx, AgentProcess};
use hull_protocols::agent::*;
use hull_protocols::health::{health_check_response::ServingStatus, CheckRequest};
use hull_protocols::ttrpc::{context, Code};

const SHARED: &str = "/run/kata-containers/shared/containers";

#[tokio::test(flavor = "current_thread")]
async fn health_check_and_version() {
    let agent = AgentProcess::start(&[]);
    let (_, health) = agent.client().await;
    let check = health.check(ctx(), &CheckRequest::new()).await.unwrap();
    assert_eq!(check.status.enum_value(), Ok(ServingStatus::SERVING));
    let version = health.version(ctx(), &CheckRequest::new()).await.unwrap();
    assert_eq!(version.agent_version, env!("CARGO_PKG_VERSION"));
    assert!(!version.grpc_version.is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn guest_details_report_block_size_version_and_drivers() {
    let agent = AgentProcess::start(&[]);
    let dir = agent.guest("/sys/devices/system/memory");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("block_size_bytes"), "8000000\n").unwrap();
    let (client, _) = agent.client().await;
    let req = GuestDetailsRequest {
        mem_block_size: true,
        mem_hotplug_probe: true,
        ..Default::default()
    };
    let details = client.get_guest_details(ctx(), &req).await.unwrap();
    assert_eq!(details.mem_block_size_bytes, 128 << 20);
    assert!(!details.support_mem_hotplug_probe);
    let agent_details = details.agent_details.unwrap();
    assert_eq!(agent_details.version, env!("CARGO_PKG_VERSION"));
    assert!(!agent_details.init_daemon);
    for driver in ["ephemeral", "local", "virtio-fs", "9p", "bind"] {
        assert!(
            agent_details.storage_handlers.contains(&driver.to_string()),
            "{driver}"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn sandbox_writes_dns_and_local_storage_and_destroy_undoes_them() {
    let agent = AgentProcess::start(&[]);
    let (client, health) = agent.client().await;
    let req = CreateSandboxRequest {
        dns: vec!["nameserver 10.0.0.2".into(), "search example.test".into()],
        storages: vec![Storage {
            driver: "local".into(),
            mount_point: "/run/kata-containers/sandbox/local/vol".into(),
            options: vec!["mode=0770".into()],
            ..Default::default()
        }],
        sandbox_id: "sb".into(),
        ..Default::default()
    };
    client.create_sandbox(ctx(), &req).await.unwrap();
    let resolv = std::fs::read_to_string(agent.guest("/etc/resolv.conf")).unwrap();
    assert_eq!(resolv, "nameserver 10.0.0.2\nsearch example.test\n");
    let vol = agent.guest("/run/kata-containers/sandbox/local/vol");
    assert!(vol.is_dir());

    let (code, _) = code_of(client.create_sandbox(ctx(), &req).await);
    assert_eq!(code, Code::FAILED_PRECONDITION, "a second CreateSandbox");

    client
        .destroy_sandbox(ctx(), &DestroySandboxRequest::new())
        .await
        .unwrap();
    assert!(!agent.guest("/etc/resolv.conf").exists());
    assert!(!agent.guest("/run/kata-containers").exists());
    // Not PID 1: the agent keeps serving after DestroySandbox.
    health.check(ctx(), &CheckRequest::new()).await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn sandbox_refuses_bad_input_and_leaves_nothing_behind() {
    let agent = AgentProcess::start(&[]);
    let (client, _) = agent.client().await;
    let with_hostname = CreateSandboxRequest {
        hostname: "needs-system".into(),
        dns: vec!["nameserver 10.0.0.2".into()],
        ..Default::default()
    };
    let (code, message) = code_of(client.create_sandbox(ctx(), &with_hostname).await);
    assert_eq!(code, Code::FAILED_PRECONDITION);
    assert!(message.contains("system mode"), "{message}");

    let bad_dns = CreateSandboxRequest {
        dns: vec!["nameserver 1.1.1.1\nnameserver 6.6.6.6".into()],
        ..Default::default()
    };
    let (code, _) = code_of(client.create_sandbox(ctx(), &bad_dns).await);
    assert_eq!(code, Code::INVALID_ARGUMENT);

    let block = CreateSandboxRequest {
        dns: vec!["nameserver 10.0.0.2".into()],
        storages: vec![Storage {
            driver: "blk".into(),
            source: "02/01".into(),
            mount_point: "/run/x".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let (code, message) = code_of(client.create_sandbox(ctx(), &block).await);
    assert_eq!(code, Code::UNIMPLEMENTED);
    assert!(message.contains("\"blk\""), "{message}");
    assert!(
        !agent.guest("/etc/resolv.conf").exists(),
        "failed create left a file"
    );
}

fn copy_request(path: &str, data: &[u8]) -> CopyFileRequest {
    CopyFileRequest {
        path: path.into(),
        file_size: data.len() as i64,
        file_mode: 0o100640,
        dir_mode: 0o755,
        uid: -1,
        gid: -1,
        data: data.to_vec(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn copy_file_writes_below_the_shared_dir_and_refuses_escapes() {
    let agent = AgentProcess::start(&[]);
    let (client, _) = agent.client().await;
    let path = format!("{SHARED}/c1-resolv.conf");
    client
        .copy_file(ctx(), &copy_request(&path, b"nameserver 10.0.0.3\n"))
        .await
        .unwrap();
    let written = std::fs::read_to_string(agent.guest(&path)).unwrap();
    assert_eq!(written, "nameserver 10.0.0.3\n");

    // A link planted inside the shared directory that points out of it.
    let outside = agent.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, agent.guest(&format!("{SHARED}/out"))).unwrap();

    let escapes = [
        format!("{SHARED}/../../../../etc/evil"),
        format!("{SHARED}/a/../../evil"),
        "/etc/evil".to_string(),
        format!("{SHARED}/out/evil"),
    ];
    for bad in &escapes {
        let (code, message) = code_of(client.copy_file(ctx(), &copy_request(bad, b"x")).await);
        assert_eq!(code, Code::PERMISSION_DENIED, "{bad}: {message}");
    }
    // Copying onto the link replaces the link itself; nothing is written through it.
    let onto_link = format!("{SHARED}/out");
    client
        .copy_file(ctx(), &copy_request(&onto_link, b"x"))
        .await
        .unwrap();
    assert!(agent.guest(&onto_link).is_file());
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert!(!agent.root.join("etc/evil").exists());
    assert!(!agent.root.join("run/kata-containers/evil").exists());
}

#[tokio::test(flavor = "current_thread")]
async fn metrics_text_parses_and_counts_requests() {
    let agent = AgentProcess::start(&[]);
    let (client, health) = agent.client().await;
    for _ in 0..3 {
        health.check(ctx(), &CheckRequest::new()).await.unwrap();
    }
    let _ = client.copy_file(ctx(), &copy_request("/etc/x", b"x")).await;
    let text = client
        .get_metrics(ctx(), &GetMetricsRequest::new())
        .await
        .unwrap()
        .metrics;
    let samples = parse_prometheus(&text);
    let value = |name: &str| {
        samples
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{name} missing in:\n{text}"))
    };
    assert_eq!(
        value("hull_agent_rpc_requests_total{method=\"Check\",code=\"OK\"}"),
        3.0
    );
    assert_eq!(
        value("hull_agent_rpc_requests_total{method=\"CopyFile\",code=\"PERMISSION_DENIED\"}"),
        1.0
    );
    assert_eq!(
        value("hull_agent_rpc_duration_seconds_count{method=\"Check\"}"),
        3.0
    );
    assert!(value("hull_agent_resident_memory_bytes") > 0.0);
    assert!(value("hull_agent_open_fds") > 0.0);
    assert!(value("hull_agent_uptime_seconds") >= 0.0);
}

/// Parses the Prometheus text format strictly enough to catch malformed output.
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let metric = name.split('{').next().unwrap();
        assert!(
            metric
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad metric name in {line:?}"
        );
        if let Some(labels) = name.strip_prefix(metric) {
            assert!(labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')));
        }
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        samples.push((name.to_string(), value));
    }
    samples
}

#[tokio::test(flavor = "current_thread")]
async fn get_oom_event_blocks_until_an_event() {
    let agent = AgentProcess::start(&[]);
    let (client, health) = agent.client().await;
    let short = context::with_duration(Duration::from_millis(300));
    let result = client
        .get_oom_event(short, &GetOOMEventRequest::new())
        .await;
    assert!(
        result.is_err(),
        "no OOM happened, the poll must not return: {result:?}"
    );
    health.check(ctx(), &CheckRequest::new()).await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn online_cpu_mem_onlines_offline_cpus() {
    let agent = AgentProcess::start(&[]);
    let cpu1 = agent.guest("/sys/devices/system/cpu/cpu1");
    std::fs::create_dir_all(&cpu1).unwrap();
    std::fs::write(cpu1.join("online"), "0").unwrap();
    let (client, _) = agent.client().await;
    client
        .online_cpu_mem(ctx(), &OnlineCPUMemRequest::new())
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(cpu1.join("online")).unwrap(),
        "0",
        "nb_cpus 0 is a no-op"
    );
    let req = OnlineCPUMemRequest {
        nb_cpus: 1,
        cpu_only: true,
        ..Default::default()
    };
    client.online_cpu_mem(ctx(), &req).await.unwrap();
    assert_eq!(std::fs::read_to_string(cpu1.join("online")).unwrap(), "1");
    let (code, _) = code_of(client.online_cpu_mem(ctx(), &req).await);
    assert_eq!(code, Code::DEADLINE_EXCEEDED, "no offline cpu left");
}

#[tokio::test(flavor = "current_thread")]
async fn clock_and_entropy_are_checked_and_need_system_mode() {
    let agent = AgentProcess::start(&[]);
    let (client, _) = agent.client().await;
    let bad_time = SetGuestDateTimeRequest {
        Sec: 1,
        Usec: 2_000_000,
        ..Default::default()
    };
    let (code, _) = code_of(client.set_guest_date_time(ctx(), &bad_time).await);
    assert_eq!(code, Code::INVALID_ARGUMENT);
    let time = SetGuestDateTimeRequest {
        Sec: 1_700_000_000,
        ..Default::default()
    };
    let (code, _) = code_of(client.set_guest_date_time(ctx(), &time).await);
    assert_eq!(code, Code::FAILED_PRECONDITION);
    let (code, _) = code_of(
        client
            .reseed_random_dev(ctx(), &ReseedRandomDevRequest::new())
            .await,
    );
    assert_eq!(code, Code::INVALID_ARGUMENT);
    let seed = ReseedRandomDevRequest {
        data: vec![7; 32],
        ..Default::default()
    };
    let (code, _) = code_of(client.reseed_random_dev(ctx(), &seed).await);
    assert_eq!(code, Code::FAILED_PRECONDITION);
}

#[tokio::test(flavor = "current_thread")]
async fn stale_virtiofs_cleanup_succeeds_and_other_rpcs_are_unimplemented() {
    let agent = AgentProcess::start(&[]);
    let (client, _) = agent.client().await;
    client
        .remove_stale_virtiofs_share_mounts(ctx(), &RemoveStaleVirtiofsShareMountsRequest::new())
        .await
        .unwrap();

    let (code, message) = code_of(
        client
            .create_container(ctx(), &CreateContainerRequest::new())
            .await,
    );
    assert_eq!(code, Code::INVALID_ARGUMENT, "{message}");
    assert!(message.contains("container_id"), "{message}");
    let (code, _) = code_of(client.wait_process(ctx(), &WaitProcessRequest::new()).await);
    assert_eq!(code, Code::NOT_FOUND, "no such container");

    let checks = [
        (
            "ListInterfaces",
            code_of(
                client
                    .list_interfaces(ctx(), &ListInterfacesRequest::new())
                    .await,
            ),
        ),
        (
            "UpdateEphemeralMounts",
            code_of(
                client
                    .update_ephemeral_mounts(ctx(), &UpdateEphemeralMountsRequest::new())
                    .await,
            ),
        ),
        (
            "AddSwap",
            code_of(client.add_swap(ctx(), &AddSwapRequest::new()).await),
        ),
        (
            "SetPolicy",
            code_of(client.set_policy(ctx(), &SetPolicyRequest::new()).await),
        ),
    ];
    for (rpc, (code, message)) in checks {
        assert_eq!(code, Code::UNIMPLEMENTED, "{rpc}");
        assert!(message.contains(rpc), "{rpc}: {message}");
    }
}
