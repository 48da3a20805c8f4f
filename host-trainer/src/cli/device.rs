//! `--device`: the burn device a command computes on.

use anyhow::Result;

/// The burn device for `--device`.
pub fn device(name: &str) -> Result<burn::tensor::Device> {
    match name {
        "cpu" | "flex" => Ok(burn::tensor::Device::flex()),
        #[cfg(feature = "cuda")]
        "cuda" => {
            cuda::probe()?;
            Ok(burn::tensor::Device::cuda(0))
        }
        #[cfg(not(feature = "cuda"))]
        "cuda" => anyhow::bail!(
            "--device cuda needs a build with `--features cuda` (`cargo xtask build-cuda`)"
        ),
        other => anyhow::bail!("unknown device '{other}' (cpu or cuda)"),
    }
}

/// burn-cuda loads the driver (libcuda) and NVRTC (libnvrtc) on first use and panics when
/// either is missing; asking the same loader first turns that into an error that names the
/// library.
#[cfg(feature = "cuda")]
mod cuda {
    use anyhow::{Result, bail};

    pub fn probe() -> Result<()> {
        // SAFETY: each call only tries dlopen on cudarc's candidate names for the library.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            bail!(
                "--device cuda: the NVIDIA driver library libcuda (libcuda.so.1) is not installed \
                 or not on the loader's path: no CUDA GPU can be used on this machine"
            );
        }
        // SAFETY: as above.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            bail!(
                "--device cuda: the CUDA runtime compiler library libnvrtc (libnvrtc.so, part of \
                 the CUDA toolkit) is not installed or not on LD_LIBRARY_PATH: burn compiles its \
                 kernels with it"
            );
        }
        cudarc::driver::result::init()
            .map_err(|e| anyhow::anyhow!("--device cuda: the driver failed to start: {e:?}"))?;
        let n = cudarc::driver::result::device::get_count()
            .map_err(|e| anyhow::anyhow!("--device cuda: cannot count CUDA devices: {e:?}"))?;
        if n < 1 {
            bail!("--device cuda: libcuda loaded, but it sees no CUDA device");
        }
        Ok(())
    }
}
