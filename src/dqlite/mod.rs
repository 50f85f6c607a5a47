//! dqlite backend (cargo feature `dqlite`): aiolite's API on a dqlite cluster, through a
//! pure-Rust client of dqlite's wire protocol.

use crate::error::{Error, Result};
use crate::options::ConnectOptions;
use crate::worker::Backend;

/// Open a `dqlite://host:port[,host:port…]/database` connection.
pub(crate) fn open_backend(opts: &ConnectOptions) -> Result<Box<dyn Backend>> {
    Err(Error::Unsupported {
        message: format!("dqlite backend not built yet: {}", opts.path.display()),
    })
}
