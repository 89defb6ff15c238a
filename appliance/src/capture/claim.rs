//! Claims on record keys, so that two deliveries of the same record that
//! arrive together are stored once, and a failed attempt never leaves a key
//! looking "already stored".
//!
//! A batch claims all its keys at once, waiting while any of them is held
//! by another batch (all or nothing, so two batches can never each hold a
//! key the other waits for). The claim is a guard: dropping it releases
//! every key, on success, on error and on panic alike. A claim only says
//! "someone is deciding about this key right now"; whether a record is a
//! duplicate is decided afterwards, by what the store holds.

use std::collections::HashSet;
use std::sync::{Condvar, Mutex, MutexGuard};

/// The keys being stored right now.
#[derive(Default)]
pub struct Claims {
    held: Mutex<HashSet<String>>,
    released: Condvar,
}

/// Keys held by one batch until dropped.
pub struct Claim<'a> {
    claims: &'a Claims,
    keys: Vec<String>,
}

impl Claims {
    pub fn new() -> Claims {
        Claims::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<String>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claim every key in `keys` (duplicates within the list are one key),
    /// blocking until none of them is held by another batch.
    pub fn claim(&self, keys: impl IntoIterator<Item = String>) -> Claim<'_> {
        let mut keys: Vec<String> = keys.into_iter().collect();
        keys.sort_unstable();
        keys.dedup();
        let mut held = self.lock();
        while keys.iter().any(|k| held.contains(k)) {
            held = self.released.wait(held).unwrap_or_else(|p| p.into_inner());
        }
        for k in &keys {
            let fresh = held.insert(k.clone());
            assert!(fresh, "a claimed key is held by no one else");
        }
        Claim { claims: self, keys }
    }

    /// How many keys are held.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.lock().len()
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut held = self.claims.lock();
        for k in &self.keys {
            let was = held.remove(k);
            assert!(was, "a claim releases only keys it holds");
        }
        drop(held);
        self.claims.released.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn keys_are_released_on_every_path() {
        let c = Claims::new();
        {
            let _a = c.claim(["x".to_string(), "y".to_string(), "x".to_string()]);
            assert_eq!(c.held(), 2);
        }
        assert_eq!(c.held(), 0);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _a = c.claim(["z".to_string()]);
            panic!("a failure while the key is held");
        }));
        assert!(r.is_err());
        assert_eq!(c.held(), 0, "a panic releases the claim too");
    }

    #[test]
    fn a_second_claim_waits_for_the_first() {
        let c = Arc::new(Claims::new());
        let first = c.claim(["k".to_string()]);
        let (tx, rx) = std::sync::mpsc::channel();
        let c2 = c.clone();
        let t = std::thread::spawn(move || {
            let _b = c2.claim(["j".to_string(), "k".to_string()]);
            tx.send(()).unwrap();
        });
        // The waiter cannot have its claim while the first is held.
        assert!(rx.try_recv().is_err());
        drop(first);
        rx.recv().unwrap();
        t.join().unwrap();
        assert_eq!(c.held(), 0);
    }
}
