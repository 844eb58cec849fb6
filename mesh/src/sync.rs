//! Locks that survive a panic elsewhere.
//!
//! A `std::sync` lock is *poisoned* when a thread panics while holding it.
//! Every lock in this workspace guards state that stays consistent at each
//! unlock (counters, tables, queues: no invariant spans a panic point), so a
//! poisoned lock is taken as it is rather than spreading the panic to every
//! other task of the node. These helpers are the one way the workspace locks a
//! `Mutex` or `RwLock`.
//!
//! ```
//! use std::sync::{Mutex, RwLock};
//! let counter = Mutex::new(0);
//! *mesh::sync::lock(&counter) += 1;
//! if let Some(mut held) = mesh::sync::try_lock(&counter) {
//!     assert!(mesh::sync::try_lock(&counter).is_none(), "held above");
//!     *held += 1;
//! }
//! let table = RwLock::new(vec![1]);
//! mesh::sync::write(&table).push(2);
//! assert_eq!(*mesh::sync::read(&table), [1, 2]);
//! assert_eq!(*mesh::sync::lock(&counter), 2);
//! ```

use std::sync::{
    Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError,
};

/// Locks `mutex`, poisoned or not.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Locks `mutex`, poisoned or not, unless someone holds it now.
pub fn try_lock<T: ?Sized>(mutex: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match mutex.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// Locks `lock` for reading, poisoned or not.
pub fn read<T: ?Sized>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Locks `lock` for writing, poisoned or not.
pub fn write<T: ?Sized>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// Keeps a value on cache lines of its own, so that writes to its neighbours
/// do not slow down the threads that read it.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct CacheAligned<T>(pub(crate) T);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_taken_as_it_is() {
        let mutex = std::sync::Arc::new(Mutex::new(1));
        let poisoner = mutex.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.lock().unwrap();
            panic!("poison");
        })
        .join();
        assert!(mutex.is_poisoned());
        *lock(&mutex) += 1;
        assert_eq!(*lock(&mutex), 2);
        *try_lock(&mutex).expect("poisoned but free") += 1;
        assert_eq!(*lock(&mutex), 3);
    }
}
