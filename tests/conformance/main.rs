//! The only integration-test binary: the whole suite for the reference (f32, f64) and the
//! OpenCL backend (f32, f64), plus OpenCL-specific and contrast tests.

mod bitwise;
mod composed_defaults;
mod contrast;
#[cfg(feature = "opencl")]
mod device_training_encoder;
#[cfg(feature = "opencl")]
mod device_training_gru;
mod invariants_seeds;
#[cfg(feature = "opencl")]
mod opencl_device;
#[cfg(feature = "opencl")]
mod opencl_layers;
#[cfg(feature = "opencl")]
mod opencl_linalg;
#[cfg(feature = "opencl")]
mod opencl_optim;
mod planted;
mod readable;
mod reference_gru;
mod reference_models;
mod reference_ops;
mod reference_optim;
mod reliability;
mod reliability_api;
mod seed002;
mod seed003;
mod seed003_grid;
#[cfg(feature = "opencl")]
mod seeds_opencl;

mloracle::backend_tests!(reference_f32, f32, Ok(mloracle::Reference));
mloracle::backend_tests!(reference_f64, f64, Ok(mloracle::Reference));

#[cfg(feature = "opencl")]
mloracle::backend_tests!(opencl_f32, f32, mloracle::harness::default_opencl());
#[cfg(feature = "opencl")]
mloracle::backend_tests!(opencl_f64, f64, mloracle::harness::default_opencl());
