//! Shared plumbing for the gpubench binaries (logging set-up, output helpers).
