//! How a command holds a store: open it, run the command on it, close it on
//! every path. Closing checkpoints and stops the store's threads, and can
//! fail; a close error is never dropped: it is the command's result when the
//! command succeeded, and is added to the command's own error when it did not.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use firmware_config::Config;
use stele_engine::compliance::audit::Actor;
use stele_engine::{Store, StoreOptions};

use super::who::Who;
use crate::store_dir::StoreDir;

/// Open the store in `root`, run `f` on it, and close it on every path.
pub fn with_store<T>(root: &Path, f: impl FnOnce(&StoreDir, &Store) -> Result<T>) -> Result<T> {
    run_and_close(StoreDir::open(root)?, f)
}

/// [`with_store`] acting as the principal `who` names.
pub fn with_store_as<T>(
    root: &Path,
    who: &Who,
    f: impl FnOnce(&StoreDir, &Store, &Actor) -> Result<T>,
) -> Result<T> {
    with_store(root, |sd, s| {
        let actor = who.actor(&sd.config)?;
        f(sd, s, &actor)
    })
}

/// [`with_store`] for an open that carries a decision `who` takes (accepting
/// a rollback, approving a configuration): `set` puts (actor, reason) into
/// the options the store is opened with.
pub fn with_store_deciding<T>(
    root: &Path,
    who: &Who,
    set: impl FnOnce(&mut StoreOptions, (Actor, String)),
    f: impl FnOnce(&StoreDir, &Store) -> Result<T>,
) -> Result<T> {
    let sd = StoreDir::load(root)?;
    let actor = who.actor(&sd.config)?;
    let s = StoreDir::open_with(root, |o| set(o, (actor, who.reason.clone())))?;
    run_and_close((sd, s), f)
}

/// [`with_store`] for a store created now in `root` with `config`.
pub fn with_new_store<T>(
    root: &Path,
    config: Config,
    f: impl FnOnce(&StoreDir, &Store) -> Result<T>,
) -> Result<T> {
    run_and_close(StoreDir::init(root, config)?, f)
}

/// [`with_store`] for a command whose workers share the store (the capture
/// service holds it in an `Arc`): every share must be given back before the
/// store closes, and one still held is an error of its own.
pub fn with_shared_store<T>(
    root: &Path,
    f: impl FnOnce(&StoreDir, &Arc<Store>) -> Result<T>,
) -> Result<T> {
    let (sd, s) = StoreDir::open(root)?;
    let s = Arc::new(s);
    let out = f(&sd, &s);
    match Arc::try_unwrap(s) {
        Ok(s) => closing(s, out),
        Err(_) => {
            let still = anyhow!("the store is still in use after the command");
            Err(match out {
                Ok(_) => still,
                Err(e) => e.context(format!("closing the store also failed: {still}")),
            })
        }
    }
}

/// Run `f` on an opened store, then close it, whatever `f` returned.
fn run_and_close<T>(
    (sd, s): (StoreDir, Store),
    f: impl FnOnce(&StoreDir, &Store) -> Result<T>,
) -> Result<T> {
    let out = f(&sd, &s);
    closing(s, out)
}

/// What a command closes when it is done: the store (a stand-in in tests).
trait Close {
    fn close(self) -> stele_engine::Result<()>;
}

impl Close for Store {
    fn close(self) -> stele_engine::Result<()> {
        Store::close(self)
    }
}

/// Close `s` after a command produced `out`.
fn closing<S: Close, T>(s: S, out: Result<T>) -> Result<T> {
    match (out, s.close()) {
        (Ok(v), Ok(())) => Ok(v),
        (Ok(_), Err(c)) => Err(c.into()),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(c)) => Err(e.context(format!("closing the store also failed: {c}"))),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use anyhow::bail;

    use super::*;

    /// A stand-in for the store that counts its closes and can fail one.
    struct Probe<'a> {
        closed: &'a Cell<u32>,
        fails: bool,
    }

    impl Close for Probe<'_> {
        fn close(self) -> stele_engine::Result<()> {
            self.closed.set(self.closed.get() + 1);
            if self.fails {
                return Err(stele_engine::Error::Poisoned {
                    reason: "the disk went away".into(),
                });
            }
            Ok(())
        }
    }

    fn run(fails: bool, out: Result<u8>) -> (Result<u8>, u32) {
        let closed = Cell::new(0);
        let r = closing(
            Probe {
                closed: &closed,
                fails,
            },
            out,
        );
        (r, closed.get())
    }

    #[test]
    fn closes_on_every_path_and_loses_no_error() {
        let (r, n) = run(false, Ok(7));
        assert_eq!((r.unwrap(), n), (7, 1));

        let (r, n) = run(false, Err(anyhow!("no record has record id \"x\"")));
        assert_eq!(n, 1, "closed after the command failed");
        assert_eq!(r.unwrap_err().to_string(), "no record has record id \"x\"");

        let (r, n) = run(true, Ok(7));
        assert_eq!(n, 1);
        let e = format!("{:#}", r.unwrap_err());
        assert!(
            e.contains("the disk went away"),
            "the close error is the result: {e}"
        );

        let (r, n) = run(true, Err(anyhow!("refused")));
        assert_eq!(n, 1);
        let e = format!("{:#}", r.unwrap_err());
        assert!(
            e.contains("refused")
                && e.contains("closing the store also failed")
                && e.contains("the disk went away"),
            "both errors are reported: {e}"
        );
    }

    fn small_config() -> Config {
        let mut c = Config::embedded_default();
        c.store.zone_size_mib = 1;
        c.store.zones_per_device = 16;
        c
    }

    #[test]
    fn a_failed_command_leaves_the_store_closed_for_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        with_new_store(&root, small_config(), |_, _| Ok(())).unwrap();
        let e = with_store(&root, |_, s| -> Result<()> {
            let now = stele_engine::store::now_us();
            s.append(stele_engine::NewRecord::message("r1", "c1", now, "hello"))?;
            bail!("the command failed after writing")
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "the command failed after writing");
        let n = with_store(&root, |_, s| {
            assert_eq!(s.open_report().tail_frames, 0, "closed with a checkpoint");
            Ok(s.next_seq())
        })
        .unwrap();
        assert!(n >= 1, "the record written before the failure is kept");
    }
}
