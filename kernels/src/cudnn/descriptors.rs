//! cuDNN's descriptors of a convolution's tensors, filter and operation, each destroyed when
//! dropped.

use std::ffi::c_int;

use cudarc::cudnn::result::{self, CudnnError};
use cudarc::cudnn::sys;

/// A descriptor type that owns its cuDNN handle and destroys it once, when dropped.
macro_rules! descriptor {
    ($name:ident, $raw:ty, $destroy:path) => {
        pub struct $name(pub $raw);

        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: created once by cuDNN, destroyed once here.
                let _ = unsafe { $destroy(self.0) };
            }
        }
    };
}

descriptor!(
    TensorDesc,
    sys::cudnnTensorDescriptor_t,
    result::destroy_tensor_descriptor
);
descriptor!(
    FilterDesc,
    sys::cudnnFilterDescriptor_t,
    result::destroy_filter_descriptor
);
descriptor!(
    ConvDesc,
    sys::cudnnConvolutionDescriptor_t,
    result::destroy_convolution_descriptor
);

impl TensorDesc {
    /// A dense float32 NCHW tensor.
    pub fn new(nchw: [c_int; 4]) -> Result<Self, CudnnError> {
        let desc = Self(result::create_tensor_descriptor()?);
        // SAFETY: just created.
        unsafe {
            result::set_tensor4d_descriptor(
                desc.0,
                sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW,
                sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
                nchw,
            )?
        };
        Ok(desc)
    }
}

impl FilterDesc {
    /// A dense float32 filter `[out channels, in channels, height, width]`.
    pub fn new(kchw: [c_int; 4]) -> Result<Self, CudnnError> {
        let desc = Self(result::create_filter_descriptor()?);
        // SAFETY: just created.
        unsafe {
            result::set_filter4d_descriptor(
                desc.0,
                sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
                sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW,
                kchw,
            )?
        };
        Ok(desc)
    }
}

impl ConvDesc {
    /// A cross-correlation (Burn's and PyTorch's "convolution") computed in float32.
    pub fn new(padding: [usize; 2], stride: [usize; 2]) -> Result<Self, CudnnError> {
        let desc = Self(result::create_convolution_descriptor()?);
        // SAFETY: just created.
        unsafe {
            result::set_convolution2d_descriptor(
                desc.0,
                padding[0] as c_int,
                padding[1] as c_int,
                stride[0] as c_int,
                stride[1] as c_int,
                1,
                1,
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
            )?
        };
        Ok(desc)
    }
}
