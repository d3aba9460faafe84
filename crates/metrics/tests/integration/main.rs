//! Integration tests of the public API, one module per area.

// A benchmark run end to end: timelines → metrics → result files → read back.
mod result_files;
// The manifest and GPU trace that accompany every result, on whatever machine runs this.
mod run_context;
