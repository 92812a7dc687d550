//! `mlops monitor`'s work, with no I/O beyond local files: capture lines (ours and SageMaker's
//! DataCapture) read back through the service's own parsers and counted into the model's
//! baseline bins ([`tally`]), ground truth joined by inference id ([`truth`]), the drift
//! measures ([`drift`]) and the verdict ([`judge`]). Streams: memory holds bins, not rows.

pub mod drift;
pub mod judge;
pub mod tally;
pub mod truth;
