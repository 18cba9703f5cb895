//! No leaks through the RPCs (root only, the agent in fresh namespaces): after 200
//! create/start/wait/remove cycles in a sandbox with shared namespaces, the agent has
//! no zombie child, no more descriptors, and no cgroup or mount left behind.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::guest::{can_run, cgroup_roots, Guest};

const CYCLES: usize = 200;

/// Every directory below `dir`, relative to it.
fn tree(dir: &Path) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let path = e.path();
                all.insert(path.strip_prefix(dir).unwrap().display().to_string());
                stack.push(path);
            }
        }
    }
    all
}

/// What the agent holds: descriptors, children (with zombies marked), mounts and
/// the cgroups under the test's parent.
#[derive(Debug, PartialEq, Eq)]
struct Holdings {
    fds: usize,
    children: Vec<String>,
    mounts: Vec<String>,
    cgroups: BTreeSet<String>,
}

fn holdings(g: &Guest) -> Holdings {
    let pid = g.agent_pid();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let mut children = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in list.split_whitespace() {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next();
            children.push(format!("{child} {}", state.unwrap_or("?")));
        }
    }
    children.sort();
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    // Mount ids change with every mount; the mount point and source say what it is.
    let mounts = info
        .lines()
        .map(|l| l.split(' ').skip(3).collect::<Vec<_>>().join(" "))
        .collect();
    let cgroups = cgroup_roots()
        .iter()
        .flat_map(|root| {
            let dir = root.join(&g.cgroup_parent);
            tree(&dir)
                .into_iter()
                .map(move |c| format!("{}/{c}", root.display()))
        })
        .collect();
    Holdings {
        fds,
        children,
        mounts,
        cgroups,
    }
}

async fn cycle(g: &Guest, id: &str) {
    g.run(id, &["/bin/sh", "-c", "echo out; echo err >&2"])
        .await;
    assert_eq!(g.read_text(id, false).await, "out\n");
    assert_eq!(g.wait(id, "").await, 0);
    g.remove(id).await;
}

#[tokio::test(flavor = "current_thread")]
async fn two_hundred_container_cycles_leave_nothing_behind() {
    if !can_run() {
        return;
    }
    let g = Guest::start(&["--system", "--log", "info"]).await;
    g.create_sandbox("leaky", true).await;
    // One cycle first: it makes what is made once (the cgroup parent, the blocking
    // threads' pool).
    cycle(&g, "warm").await;
    let before = holdings(&g);
    assert!(
        before.children.iter().all(|c| !c.ends_with(" Z")),
        "{before:?}"
    );

    for i in 0..CYCLES {
        cycle(&g, &format!("c{i}")).await;
    }

    let after = holdings(&g);
    assert_eq!(after.children, before.children, "children (Z: zombie)");
    assert_eq!(after.fds, before.fds, "descriptors of the agent");
    assert_eq!(after.mounts, before.mounts, "mounts of the agent");
    assert_eq!(
        after.cgroups, before.cgroups,
        "cgroups under the test's parent"
    );
}
