//! Cgroup resources: devices, memory, CPU, pids, block I/O, hugepages and network.

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxHugepageLimit,
    LinuxInterfacePriority, LinuxMemory, LinuxNetwork, LinuxPids, LinuxResources,
    LinuxThrottleDevice, LinuxThrottleDeviceBuilder, LinuxWeightDevice, LinuxWeightDeviceBuilder,
};

use super::{
    list_from_proto, list_to_proto, non_empty, non_zero, parse_name, OciConvertError, Result,
    Within,
};
use crate::oci;

/// The wire value of a device-cgroup major or minor that matches every device.
const WILDCARD: i64 = -1;

/// Converts protocol `LinuxResources` (`UpdateContainerRequest.resources`).
pub fn resources_from_proto(res: &oci::LinuxResources) -> Result<LinuxResources> {
    let mut out = LinuxResources::default();
    out.set_devices(list_from_proto(
        &res.Devices,
        "devices",
        device_cgroup_from_proto,
    )?);
    out.set_memory(res.Memory.as_ref().map(memory_from_proto));
    out.set_cpu(res.CPU.as_ref().map(cpu_from_proto));
    out.set_pids(res.Pids.as_ref().map(pids_from_proto));
    out.set_block_io(
        res.BlockIO
            .as_ref()
            .map(block_io_from_proto)
            .transpose()
            .within("blockIO")?,
    );
    out.set_hugepage_limits(list_from_proto(
        &res.HugepageLimits,
        "hugepageLimits",
        hugepage_from_proto,
    )?);
    out.set_network(res.Network.as_ref().map(network_from_proto));
    out.set_rdma(None);
    out.set_unified(None);
    Ok(out)
}

/// Converts oci-spec `LinuxResources` into the protocol's message.
pub fn resources_to_proto(res: &LinuxResources) -> Result<oci::LinuxResources> {
    Ok(oci::LinuxResources {
        Devices: list_to_proto(res.devices(), "devices", |d| Ok(device_cgroup_to_proto(d)))?,
        Memory: res.memory().as_ref().map(memory_to_proto).into(),
        CPU: res.cpu().as_ref().map(cpu_to_proto).into(),
        Pids: res.pids().as_ref().map(pids_to_proto).into(),
        BlockIO: res.block_io().as_ref().map(block_io_to_proto).into(),
        HugepageLimits: list_to_proto(res.hugepage_limits(), "hugepageLimits", hugepage_to_proto)?,
        Network: res.network().as_ref().map(network_to_proto).into(),
        ..Default::default()
    })
}

fn device_cgroup_from_proto(dev: &oci::LinuxDeviceCgroup) -> Result<LinuxDeviceCgroup> {
    let typ = if dev.Type.is_empty() {
        None
    } else {
        Some(parse_name::<LinuxDeviceType>(
            &dev.Type,
            "type",
            "device type",
        )?)
    };
    let number = |n: i64| (n != WILDCARD).then_some(n);
    let mut out = LinuxDeviceCgroup::default();
    out.set_allow(dev.Allow);
    out.set_typ(typ);
    out.set_major(number(dev.Major));
    out.set_minor(number(dev.Minor));
    out.set_access(non_empty(&dev.Access));
    Ok(out)
}

fn device_cgroup_to_proto(dev: &LinuxDeviceCgroup) -> oci::LinuxDeviceCgroup {
    oci::LinuxDeviceCgroup {
        Allow: dev.allow(),
        Type: dev.typ().map(|t| t.as_str().to_owned()).unwrap_or_default(),
        Major: dev.major().unwrap_or(WILDCARD),
        Minor: dev.minor().unwrap_or(WILDCARD),
        Access: dev.access().clone().unwrap_or_default(),
        ..Default::default()
    }
}

#[allow(deprecated)] // Kernel memory limits are obsolete but still on the wire.
fn memory_from_proto(mem: &oci::LinuxMemory) -> LinuxMemory {
    let mut out = LinuxMemory::default();
    out.set_limit(non_zero(mem.Limit));
    out.set_reservation(non_zero(mem.Reservation));
    out.set_swap(non_zero(mem.Swap));
    out.set_kernel(non_zero(mem.Kernel));
    out.set_kernel_tcp(non_zero(mem.KernelTCP));
    out.set_swappiness(non_zero(mem.Swappiness));
    out.set_disable_oom_killer(mem.DisableOOMKiller.then_some(true));
    out
}

#[allow(deprecated)] // Kernel, as above.
fn memory_to_proto(mem: &LinuxMemory) -> oci::LinuxMemory {
    oci::LinuxMemory {
        Limit: mem.limit().unwrap_or(0),
        Reservation: mem.reservation().unwrap_or(0),
        Swap: mem.swap().unwrap_or(0),
        Kernel: mem.kernel().unwrap_or(0),
        KernelTCP: mem.kernel_tcp().unwrap_or(0),
        Swappiness: mem.swappiness().unwrap_or(0),
        DisableOOMKiller: mem.disable_oom_killer().unwrap_or(false),
        ..Default::default()
    }
}

fn cpu_from_proto(cpu: &oci::LinuxCPU) -> LinuxCpu {
    let mut out = LinuxCpu::default();
    out.set_shares(non_zero(cpu.Shares));
    out.set_quota(non_zero(cpu.Quota));
    out.set_period(non_zero(cpu.Period));
    out.set_realtime_runtime(non_zero(cpu.RealtimeRuntime));
    out.set_realtime_period(non_zero(cpu.RealtimePeriod));
    out.set_cpus(non_empty(&cpu.Cpus));
    out.set_mems(non_empty(&cpu.Mems));
    out
}

fn cpu_to_proto(cpu: &LinuxCpu) -> oci::LinuxCPU {
    oci::LinuxCPU {
        Shares: cpu.shares().unwrap_or(0),
        Quota: cpu.quota().unwrap_or(0),
        Period: cpu.period().unwrap_or(0),
        RealtimeRuntime: cpu.realtime_runtime().unwrap_or(0),
        RealtimePeriod: cpu.realtime_period().unwrap_or(0),
        Cpus: cpu.cpus().clone().unwrap_or_default(),
        Mems: cpu.mems().clone().unwrap_or_default(),
        ..Default::default()
    }
}

fn pids_from_proto(pids: &oci::LinuxPids) -> LinuxPids {
    let mut out = LinuxPids::default();
    out.set_limit(pids.Limit);
    out
}

fn pids_to_proto(pids: &LinuxPids) -> oci::LinuxPids {
    oci::LinuxPids {
        Limit: pids.limit(),
        ..Default::default()
    }
}

fn block_io_from_proto(bio: &oci::LinuxBlockIO) -> Result<LinuxBlockIo> {
    let throttle = |list: &[oci::LinuxThrottleDevice], field| {
        list_from_proto(list, field, throttle_device_from_proto)
    };
    let mut out = LinuxBlockIo::default();
    out.set_weight(weight_from_proto(bio.Weight, "weight")?);
    out.set_leaf_weight(weight_from_proto(bio.LeafWeight, "leafWeight")?);
    out.set_weight_device(list_from_proto(
        &bio.WeightDevice,
        "weightDevice",
        weight_device_from_proto,
    )?);
    out.set_throttle_read_bps_device(throttle(
        &bio.ThrottleReadBpsDevice,
        "throttleReadBpsDevice",
    )?);
    out.set_throttle_write_bps_device(throttle(
        &bio.ThrottleWriteBpsDevice,
        "throttleWriteBpsDevice",
    )?);
    out.set_throttle_read_iops_device(throttle(
        &bio.ThrottleReadIOPSDevice,
        "throttleReadIOPSDevice",
    )?);
    out.set_throttle_write_iops_device(throttle(
        &bio.ThrottleWriteIOPSDevice,
        "throttleWriteIOPSDevice",
    )?);
    Ok(out)
}

fn block_io_to_proto(bio: &LinuxBlockIo) -> oci::LinuxBlockIO {
    let throttle = |list: &Option<Vec<LinuxThrottleDevice>>| -> Vec<oci::LinuxThrottleDevice> {
        list.iter()
            .flatten()
            .map(throttle_device_to_proto)
            .collect()
    };
    oci::LinuxBlockIO {
        Weight: bio.weight().map_or(0, u32::from),
        LeafWeight: bio.leaf_weight().map_or(0, u32::from),
        WeightDevice: bio
            .weight_device()
            .iter()
            .flatten()
            .map(weight_device_to_proto)
            .collect(),
        ThrottleReadBpsDevice: throttle(bio.throttle_read_bps_device()),
        ThrottleWriteBpsDevice: throttle(bio.throttle_write_bps_device()),
        ThrottleReadIOPSDevice: throttle(bio.throttle_read_iops_device()),
        ThrottleWriteIOPSDevice: throttle(bio.throttle_write_iops_device()),
        ..Default::default()
    }
}

/// A block I/O weight: `None` for 0, an error above `u16::MAX`.
fn weight_from_proto(weight: u32, field: &str) -> Result<Option<u16>> {
    u16::try_from(weight)
        .map(non_zero)
        .map_err(|_| OciConvertError::out_of_range(field, weight))
}

fn weight_device_from_proto(dev: &oci::LinuxWeightDevice) -> Result<LinuxWeightDevice> {
    let mut builder = LinuxWeightDeviceBuilder::default()
        .major(dev.Major)
        .minor(dev.Minor);
    if let Some(weight) = weight_from_proto(dev.Weight, "weight")? {
        builder = builder.weight(weight);
    }
    if let Some(leaf) = weight_from_proto(dev.LeafWeight, "leafWeight")? {
        builder = builder.leaf_weight(leaf);
    }
    builder
        .build()
        .map_err(|e| OciConvertError::rejected("", e))
}

fn weight_device_to_proto(dev: &LinuxWeightDevice) -> oci::LinuxWeightDevice {
    oci::LinuxWeightDevice {
        Major: dev.major(),
        Minor: dev.minor(),
        Weight: dev.weight().map_or(0, u32::from),
        LeafWeight: dev.leaf_weight().map_or(0, u32::from),
        ..Default::default()
    }
}

fn throttle_device_from_proto(dev: &oci::LinuxThrottleDevice) -> Result<LinuxThrottleDevice> {
    LinuxThrottleDeviceBuilder::default()
        .major(dev.Major)
        .minor(dev.Minor)
        .rate(dev.Rate)
        .build()
        .map_err(|e| OciConvertError::rejected("", e))
}

fn throttle_device_to_proto(dev: &LinuxThrottleDevice) -> oci::LinuxThrottleDevice {
    oci::LinuxThrottleDevice {
        Major: dev.major(),
        Minor: dev.minor(),
        Rate: dev.rate(),
        ..Default::default()
    }
}

fn hugepage_from_proto(limit: &oci::LinuxHugepageLimit) -> Result<LinuxHugepageLimit> {
    if limit.Pagesize.is_empty() {
        return Err(OciConvertError::missing("pageSize"));
    }
    let bytes = i64::try_from(limit.Limit)
        .map_err(|_| OciConvertError::out_of_range("limit", limit.Limit))?;
    let mut out = LinuxHugepageLimit::default();
    out.set_page_size(limit.Pagesize.clone());
    out.set_limit(bytes);
    Ok(out)
}

fn hugepage_to_proto(limit: &LinuxHugepageLimit) -> Result<oci::LinuxHugepageLimit> {
    let bytes = u64::try_from(limit.limit())
        .map_err(|_| OciConvertError::out_of_range("limit", limit.limit()))?;
    Ok(oci::LinuxHugepageLimit {
        Pagesize: limit.page_size().clone(),
        Limit: bytes,
        ..Default::default()
    })
}

fn network_from_proto(net: &oci::LinuxNetwork) -> LinuxNetwork {
    let priorities: Vec<LinuxInterfacePriority> = net
        .Priorities
        .iter()
        .map(|p| {
            let mut out = LinuxInterfacePriority::default();
            out.set_name(p.Name.clone());
            out.set_priority(p.Priority);
            out
        })
        .collect();
    let mut out = LinuxNetwork::default();
    out.set_class_id(non_zero(net.ClassID));
    out.set_priorities((!priorities.is_empty()).then_some(priorities));
    out
}

fn network_to_proto(net: &LinuxNetwork) -> oci::LinuxNetwork {
    oci::LinuxNetwork {
        ClassID: net.class_id().unwrap_or(0),
        Priorities: net
            .priorities()
            .iter()
            .flatten()
            .map(|p| oci::LinuxInterfacePriority {
                Name: p.name().clone(),
                Priority: p.priority(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_cgroup_wildcard_is_minus_one_and_zero_is_a_number() {
        let deny_all = oci::LinuxDeviceCgroup {
            Allow: false,
            Major: WILDCARD,
            Minor: WILDCARD,
            Access: "rwm".into(),
            ..Default::default()
        };
        let rule = device_cgroup_from_proto(&deny_all).expect("converts");
        assert_eq!((rule.typ(), rule.major(), rule.minor()), (None, None, None));
        assert_eq!(device_cgroup_to_proto(&rule), deny_all);

        let null_device = oci::LinuxDeviceCgroup {
            Allow: true,
            Type: "c".into(),
            Major: 1,
            Minor: 0,
            Access: "rw".into(),
            ..Default::default()
        };
        let rule = device_cgroup_from_proto(&null_device).expect("converts");
        assert_eq!(rule.minor(), Some(0));
        assert_eq!(rule.typ(), Some(LinuxDeviceType::C));
    }

    #[test]
    fn update_with_memory_only_leaves_the_rest_unset() {
        // UpdateContainerRequest.resources as runtimes send it: memory and CPU.
        let proto = oci::LinuxResources {
            Memory: Some(oci::LinuxMemory {
                Limit: 256 << 20,
                ..Default::default()
            })
            .into(),
            CPU: Some(oci::LinuxCPU {
                Quota: 50_000,
                Period: 100_000,
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        let res = resources_from_proto(&proto).expect("converts");
        let memory = res.memory().expect("memory present");
        assert_eq!(memory.limit(), Some(256 << 20));
        assert_eq!(memory.swap(), None);
        assert_eq!(memory.disable_oom_killer(), None);
        let cpu = res.cpu().as_ref().expect("cpu present");
        assert_eq!(
            (cpu.quota(), cpu.period(), cpu.shares()),
            (Some(50_000), Some(100_000), None)
        );
        assert!(res.devices().is_none());
        assert!(res.pids().is_none());
        assert!(res.block_io().is_none());
        assert_eq!(resources_to_proto(&res).expect("converts back"), proto);
    }

    #[test]
    fn hugepage_limits_out_of_range_are_refused() {
        let proto = oci::LinuxResources {
            HugepageLimits: vec![oci::LinuxHugepageLimit {
                Pagesize: "1GB".into(),
                Limit: u64::MAX,
                ..Default::default()
            }],
            ..Default::default()
        };
        let err = resources_from_proto(&proto).expect_err("too large for oci-spec");
        assert_eq!(err.field(), "hugepageLimits[0].limit");

        let mut negative = LinuxHugepageLimit::default();
        negative.set_page_size("2MB".into());
        negative.set_limit(-1);
        let mut res = LinuxResources::default();
        res.set_hugepage_limits(Some(vec![negative]));
        let err = resources_to_proto(&res).expect_err("negative limit");
        assert_eq!(err.field(), "hugepageLimits[0].limit");
    }

    #[test]
    fn weight_device_weight_out_of_range_names_the_device() {
        let proto = oci::LinuxBlockIO {
            WeightDevice: vec![oci::LinuxWeightDevice {
                Major: 8,
                Weight: 100,
                LeafWeight: 1 << 16,
                ..Default::default()
            }],
            ..Default::default()
        };
        let err = block_io_from_proto(&proto).expect_err("leaf weight too large");
        assert_eq!(err.field(), "weightDevice[0].leafWeight");
    }
}
