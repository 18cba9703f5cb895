//! The container section: latencies inside one sandbox, throughput, and the
//! agent's memory after 100 containers. Each figure that the agent cannot serve
//! (an RPC answered UNIMPLEMENTED) is reported as not measurable with the RPC
//! named; any other error fails the figure.

use std::time::{Duration, Instant};

use hull_runtime::image::Image;
use hull_runtime::vm::spec::Accel;

use super::boot;
use super::containers::{ContainersError, Sandbox};
use super::figure::{summarise_or, Figure, Unit, Value};
use super::prometheus;

/// Containers per throughput batch (and the parallelism of the parallel one).
const BATCH: usize = 8;
/// Containers run before the "after 100 containers" memory figures.
const MEMORY_AFTER: u64 = 100;

/// The section's figures: id, label, unit.
const FIGURES: [(&str, &str, Unit); 7] = [
    (
        "containers.create_start",
        "CreateContainer + StartContainer (`true`)",
        Unit::Ms,
    ),
    (
        "containers.exec_true",
        "ExecProcess → exit of `true` (WaitProcess)",
        Unit::Ms,
    ),
    (
        "containers.read_stdout",
        "one ReadStdout round trip (32 KiB asked, output waiting)",
        Unit::Ms,
    ),
    (
        "throughput.sequential",
        "containers started and removed per second, sequential",
        Unit::PerSecond,
    ),
    (
        "throughput.parallel",
        "containers started and removed per second, 8 in parallel",
        Unit::PerSecond,
    ),
    (
        "memory.containers.agent_rss",
        "agent VmRSS after 100 containers",
        Unit::Bytes,
    ),
    (
        "memory.containers.agent_anon",
        "agent anonymous RSS after 100 containers",
        Unit::Bytes,
    ),
];

/// What the section needs.
pub struct Setup<'a> {
    /// The image.
    pub image: &'a Image,
    /// Guest architecture.
    pub arch: &'a str,
    /// Accelerator.
    pub accel: Accel,
    /// Runs per figure.
    pub runs: usize,
    /// Limit for the boot.
    pub timeout: Duration,
}

/// Measures the section.
pub async fn measure(setup: &Setup<'_>) -> Vec<Figure> {
    let mut sandbox =
        match Sandbox::start(setup.image, setup.arch, setup.accel, setup.timeout).await {
            Ok(s) => s,
            Err(e) => return all(&outcome(Some(e))),
        };
    let mut results = vec![
        create_start(&mut sandbox, setup.runs).await,
        exec_true(&mut sandbox, setup.runs).await,
        read_round_trip(&mut sandbox, setup.runs).await,
        throughput(&mut sandbox, setup.runs, false).await,
        throughput(&mut sandbox, setup.runs, true).await,
    ];
    let mut figures: Vec<Figure> = FIGURES
        .iter()
        .zip(results.drain(..))
        .map(|(&(id, label, unit), samples)| figure(id, label, unit, samples))
        .collect();
    figures.extend(memory_after(&mut sandbox).await);
    sandbox.stop().await;
    figures
}

type Samples = (Vec<f64>, Option<ContainersError>);

async fn create_start(sandbox: &mut Sandbox, runs: usize) -> Samples {
    let mut samples = Vec::new();
    for _ in 0..runs {
        let id = match sandbox.prepare() {
            Ok(id) => id,
            Err(e) => return (samples, Some(e)),
        };
        let started = Instant::now();
        if let Err(e) = sandbox.create_start_prepared(&id, &["/bin/true"]).await {
            return (samples, Some(e));
        }
        samples.push(ms(started.elapsed()));
        if let Err(e) = sandbox.finish(&id).await {
            return (samples, Some(e));
        }
    }
    (samples, None)
}

async fn exec_true(sandbox: &mut Sandbox, runs: usize) -> Samples {
    let id = match sandbox.create_start(&["/bin/sleep", "3600"]).await {
        Ok(id) => id,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut samples = Vec::new();
    let mut error = None;
    for _ in 0..runs {
        let started = Instant::now();
        let exec = match sandbox.exec(&id, &["/bin/true"]).await {
            Ok(exec) => exec,
            Err(e) => {
                error = Some(e);
                break;
            }
        };
        if let Err(e) = sandbox.wait(&id, &exec).await {
            error = Some(e);
            break;
        }
        samples.push(ms(started.elapsed()));
    }
    let stopped = stop_container(sandbox, &id).await;
    (samples, error.or(stopped.err()))
}

async fn read_round_trip(sandbox: &mut Sandbox, runs: usize) -> Samples {
    let id = match sandbox.create_start(&["/bin/sleep", "3600"]).await {
        Ok(id) => id,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let result = async {
        // `yes` keeps the pipe full, so each read finds output waiting.
        let exec = sandbox.exec(&id, &["/bin/yes", "hull"]).await?;
        sandbox.read_stdout(&id, &exec).await?;
        let mut samples = Vec::new();
        for _ in 0..runs {
            let started = Instant::now();
            sandbox.read_stdout(&id, &exec).await?;
            samples.push(ms(started.elapsed()));
        }
        sandbox.kill(&id, &exec).await?;
        Ok::<_, ContainersError>(samples)
    }
    .await;
    let stopped = stop_container(sandbox, &id).await;
    match result {
        Ok(samples) => (samples, stopped.err()),
        Err(e) => (Vec::new(), Some(e)),
    }
}

async fn stop_container(sandbox: &mut Sandbox, id: &str) -> Result<(), ContainersError> {
    sandbox.kill(id, "").await?;
    sandbox.remove(id).await
}

async fn throughput(sandbox: &mut Sandbox, runs: usize, parallel: bool) -> Samples {
    let mut samples = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let done = if parallel {
            sandbox.run_parallel(BATCH).await.map(drop)
        } else {
            sequential(sandbox).await
        };
        if let Err(e) = done {
            return (samples, Some(e));
        }
        samples.push(BATCH as f64 / started.elapsed().as_secs_f64());
    }
    (samples, None)
}

async fn sequential(sandbox: &mut Sandbox) -> Result<(), ContainersError> {
    for _ in 0..BATCH {
        sandbox.run_true().await?;
    }
    Ok(())
}

async fn memory_after(sandbox: &mut Sandbox) -> Vec<Figure> {
    let mut error = None;
    while sandbox.created < MEMORY_AFTER && error.is_none() {
        error = sandbox.run_true().await.err();
    }
    let metrics = match error {
        Some(e) => Err(e),
        None => boot::metrics(sandbox.client())
            .await
            .map_err(ContainersError::from),
    };
    let value = |name: &str| match &metrics {
        Ok(m) => m.get(name).map_or(
            Value::NotMeasurable {
                reason: format!("the agent's GetMetrics does not export {name}"),
            },
            |v| Value::Single { value: v },
        ),
        Err(e) => outcome_of(e),
    };
    let values = [value(prometheus::AGENT_RSS), value(prometheus::AGENT_ANON)];
    FIGURES[5..]
        .iter()
        .zip(values)
        .map(|(&(id, label, unit), v)| Figure::new(id, group(id), label, unit, v))
        .collect()
}

fn group(id: &str) -> &'static str {
    match id.split('.').next() {
        Some("throughput") => "Throughput",
        Some("memory") => "Memory",
        _ => "Containers (one sandbox)",
    }
}

fn figure(id: &str, label: &str, unit: Unit, (samples, error): Samples) -> Figure {
    let value = match error {
        Some(e) => outcome_of(&e),
        None => summarise_or(
            &samples,
            Value::Failed {
                reason: "no samples".into(),
            },
        ),
    };
    Figure::new(id, group(id), label, unit, value)
}

fn outcome(error: Option<ContainersError>) -> Value {
    error.as_ref().map_or(
        Value::Failed {
            reason: "no samples".into(),
        },
        outcome_of,
    )
}

/// Not measurable when the agent or host lacks the part; failed otherwise.
fn outcome_of(error: &ContainersError) -> Value {
    if let Some(reason) = error.unimplemented() {
        return Value::NotMeasurable { reason };
    }
    match error {
        ContainersError::NoBusybox(_) => Value::NotMeasurable {
            reason: error.describe(),
        },
        _ => Value::Failed {
            reason: error.describe(),
        },
    }
}

/// Every figure of the section with the same value.
fn all(value: &Value) -> Vec<Figure> {
    FIGURES
        .iter()
        .map(|&(id, label, unit)| Figure::new(id, group(id), label, unit, value.clone()))
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
