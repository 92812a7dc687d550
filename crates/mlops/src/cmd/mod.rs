//! One module per subcommand.

pub(crate) mod registry;
pub(crate) mod render;
pub(crate) mod train;
pub(crate) mod validate;
