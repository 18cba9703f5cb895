//! One reported figure: a summary of repeated samples (median, min, max), a
//! single value (a file size), or the reason it could not be measured.
//!
//! Two kinds of "no value" are kept apart: [`Value::NotMeasurable`] is a figure
//! that depends on something this build does not have (an RPC the agent does not
//! implement yet, a kernel without built-in vsock); [`Value::Failed`] is one that
//! should have been measured and was not. Only the second fails the bench.

use serde::Serialize;

/// What a figure counts.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Milliseconds.
    Ms,
    /// Bytes.
    Bytes,
    /// Containers per second.
    PerSecond,
    /// A ratio of two figures.
    Ratio,
}

/// The value of a figure.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Value {
    /// Repeated samples, summarised.
    Measured {
        median: f64,
        min: f64,
        max: f64,
        runs: usize,
        samples: Vec<f64>,
    },
    /// One value (sizes, which do not vary between runs).
    Single { value: f64 },
    /// Depends on a part this build lacks; the reason says which.
    NotMeasurable { reason: String },
    /// Should have been measured but was not.
    Failed { reason: String },
}

/// A named figure of the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Figure {
    /// Stable key, e.g. `boot.initrd.agent_ready`.
    pub id: String,
    /// The table section it is shown in.
    pub group: String,
    /// What it measures, for people.
    pub label: String,
    /// The unit of the numbers.
    pub unit: Unit,
    /// The value.
    #[serde(flatten)]
    pub value: Value,
}

impl Figure {
    /// A figure with `value`.
    pub fn new(id: &str, group: &str, label: &str, unit: Unit, value: Value) -> Self {
        Self {
            id: id.to_string(),
            group: group.to_string(),
            label: label.to_string(),
            unit,
            value,
        }
    }

    /// Whether the figure should have had a value and has none.
    pub fn failed(&self) -> bool {
        matches!(self.value, Value::Failed { .. })
    }

    /// The median (or single value), if there is one.
    pub fn central(&self) -> Option<f64> {
        match self.value {
            Value::Measured { median, .. } => Some(median),
            Value::Single { value } => Some(value),
            _ => None,
        }
    }
}

/// Summarises `samples`; `None` when there are none.
pub fn summarise(samples: &[f64]) -> Option<Value> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    let median = if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    };
    Some(Value::Measured {
        median,
        min: sorted[0],
        max: sorted[sorted.len() - 1],
        runs: samples.len(),
        samples: samples.to_vec(),
    })
}

/// Summarises `samples`, or explains why there are none with `missing`.
pub fn summarise_or(samples: &[f64], missing: Value) -> Value {
    summarise(samples).unwrap_or(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let Some(Value::Measured {
            median,
            min,
            max,
            runs,
            ..
        }) = summarise(&[5.0, 1.0, 3.0])
        else {
            panic!("no summary");
        };
        assert_eq!((median, min, max, runs), (3.0, 1.0, 5.0, 3));
        let Some(Value::Measured { median, .. }) = summarise(&[4.0, 1.0, 3.0, 2.0]) else {
            panic!("no summary");
        };
        assert_eq!(median, 2.5);
    }

    #[test]
    fn no_samples_gives_the_fallback() {
        assert_eq!(summarise(&[]), None);
        let why = Value::NotMeasurable {
            reason: "no agent".into(),
        };
        assert_eq!(summarise_or(&[], why.clone()), why);
    }

    #[test]
    fn only_failed_figures_fail() {
        let f = |value| Figure::new("a", "g", "l", Unit::Ms, value);
        assert!(f(Value::Failed { reason: "x".into() }).failed());
        assert!(!f(Value::NotMeasurable { reason: "x".into() }).failed());
        assert_eq!(f(Value::Single { value: 2.0 }).central(), Some(2.0));
    }
}
