//! Platform and device choice, one context and queue per process.

use ocl::enums::{DeviceInfo, DeviceInfoResult};
use ocl::flags::DeviceType;
use ocl::{Context, Device, Platform, Queue};

use crate::{Error, Result};

/// Environment variable naming the device: a case-insensitive substring of
/// `"<platform name> / <device name>"`.
pub const DEVICE_ENV: &str = "MLORACLE_DEVICE";

/// A chosen device with its context and in-order queue.
#[derive(Debug, Clone)]
pub(crate) struct DeviceContext {
    pub(crate) platform_name: String,
    pub(crate) device_name: String,
    pub(crate) device: Device,
    pub(crate) context: Context,
    pub(crate) queue: Queue,
    pub(crate) has_fp64: bool,
    pub(crate) max_work_group_size: usize,
    /// `CL_DEVICE_TYPE` includes CPU (row kernels then use few items and wide vectors).
    pub(crate) is_cpu: bool,
    /// `CL_DEVICE_MAX_MEM_ALLOC_SIZE` in bytes (0 when the query failed: no limit checked).
    pub(crate) max_allocation_bytes: u64,
    /// `CL_DEVICE_MEM_BASE_ADDR_ALIGN` in bytes: the alignment of a sub-buffer's origin
    /// (1024 bits assumed when the query fails, the largest value in common drivers' tables).
    pub(crate) base_alignment_bytes: usize,
}

fn is_gpu(device: &Device) -> bool {
    matches!(device.info(DeviceInfo::Type), Ok(DeviceInfoResult::Type(t)) if t.contains(DeviceType::GPU))
}

fn is_cpu(device: &Device) -> bool {
    matches!(device.info(DeviceInfo::Type), Ok(DeviceInfoResult::Type(t)) if t.contains(DeviceType::CPU))
}

/// Every `(platform, device, "platform / device")` the loader reports.
fn list_devices() -> Result<Vec<(Platform, Device, String)>> {
    let ids = ocl::core::get_platform_ids().map_err(|e| Error::NoPlatform {
        detail: e.to_string(),
    })?;
    if ids.is_empty() {
        return Err(Error::NoPlatform {
            detail: "the OpenCL loader lists no platform".to_string(),
        });
    }
    let mut found = Vec::new();
    for platform in Platform::list_from_core(ids) {
        let platform_name = platform
            .name()
            .unwrap_or_else(|e| format!("<unnamed platform: {e}>"));
        // A platform that fails to list devices is skipped; it cannot be chosen.
        for device in Device::list_all(platform).unwrap_or_default() {
            let device_name = device
                .name()
                .unwrap_or_else(|e| format!("<unnamed device: {e}>"));
            let label = format!("{platform_name} / {device_name}");
            found.push((platform, device, label));
        }
    }
    Ok(found)
}

/// Choose a device: those matching `filter` (substring of the label, case-insensitive; `None`
/// accepts all), then the first GPU among them, else the first device.
pub(crate) fn open(filter: Option<&str>) -> Result<DeviceContext> {
    let all = list_devices()?;
    let wanted = filter.map(str::to_lowercase);
    let candidates: Vec<_> = all
        .iter()
        .filter(|(_, _, label)| {
            wanted
                .as_ref()
                .is_none_or(|w| label.to_lowercase().contains(w.as_str()))
        })
        .collect();
    let chosen = candidates
        .iter()
        .find(|(_, d, _)| is_gpu(d))
        .or_else(|| candidates.first())
        .ok_or_else(|| Error::NoDevice {
            wanted: filter.unwrap_or("any").to_string(),
            available: if all.is_empty() {
                "none".to_string()
            } else {
                all.iter()
                    .map(|(_, _, l)| l.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        })?;
    let (platform, device, _) = *chosen;
    let platform_name = platform.name().unwrap_or_default();
    let device_name = device.name().unwrap_or_default();
    let context = Context::builder()
        .platform(*platform)
        .devices(*device)
        .build()
        .map_err(|e| Error::opencl("creating the context", e))?;
    let queue =
        Queue::new(&context, *device, None).map_err(|e| Error::opencl("creating the queue", e))?;
    let extensions = device
        .info(DeviceInfo::Extensions)
        .map(|e| e.to_string())
        .unwrap_or_default();
    let max_work_group_size = device
        .max_wg_size()
        .map_err(|e| Error::opencl("querying max work-group size", e))?;
    Ok(DeviceContext {
        platform_name,
        device_name,
        device: *device,
        context,
        queue,
        has_fp64: extensions.split_whitespace().any(|e| e == "cl_khr_fp64"),
        max_work_group_size,
        is_cpu: is_cpu(device),
        max_allocation_bytes: match device.info(DeviceInfo::MaxMemAllocSize) {
            Ok(DeviceInfoResult::MaxMemAllocSize(bytes)) => bytes,
            _ => 0,
        },
        base_alignment_bytes: match device.info(DeviceInfo::MemBaseAddrAlign) {
            Ok(DeviceInfoResult::MemBaseAddrAlign(bits)) => (bits as usize / 8).max(1),
            _ => 128,
        },
    })
}
