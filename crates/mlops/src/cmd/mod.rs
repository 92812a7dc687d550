//! One module per subcommand.

pub(crate) mod render;
pub(crate) mod validate;
