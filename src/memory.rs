//! Returning freed memory to the operating system. glibc keeps freed heap memory for reuse;
//! after loading a model (whose file and original weights ONNX Runtime frees once the session is
//! built) and after a burst of requests, that is tens of megabytes of resident memory doing
//! nothing, which container memory limits and autoscalers count.

/// Gives free heap memory back to the OS. Cheap when there is little to give back.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory that is already free; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
