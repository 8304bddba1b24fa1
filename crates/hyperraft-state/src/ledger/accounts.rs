//! Account storage: a dense vector of accounts in creation order and an id index.

use std::collections::HashMap;

use super::account::Account;

/// Slot of an account in [`AccountStore`]; stable for the account's life.
pub(crate) type Slot = u32;

/// Accounts by id. Slots make the executor's scheduling a vector lookup
/// instead of a hash lookup, and keep snapshot order deterministic.
#[derive(Default)]
pub(crate) struct AccountStore {
    slots: Vec<Account>,
    index: HashMap<u128, Slot, foldhash::fast::RandomState>,
}

impl AccountStore {
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn slot_of(&self, id: u128) -> Option<Slot> {
        self.index.get(&id).copied()
    }

    pub(crate) fn get(&self, id: u128) -> Option<&Account> {
        self.slot_of(id).map(|slot| &self.slots[slot as usize])
    }

    /// Starts loading the account at `slot` (both cache lines it may
    /// span) into the cache; a slot out of range is ignored.
    pub(crate) fn prefetch(&self, slot: Slot) {
        if let Some(account) = self.slots.get(slot as usize) {
            let start: *const u8 = (account as *const Account).cast();
            super::prefetch_line(start);
            super::prefetch_line(start.wrapping_add(std::mem::size_of::<Account>() - 1));
        }
    }

    pub(crate) fn slots(&self) -> &[Account] {
        &self.slots
    }

    pub(crate) fn slots_mut(&mut self) -> &mut [Account] {
        &mut self.slots
    }

    /// Adds a new account; the caller checked that its id is free.
    pub(crate) fn insert(&mut self, account: Account) -> Slot {
        let slot = Slot::try_from(self.slots.len()).expect("accounts_max fits in u32");
        let previous = self.index.insert(account.id, slot);
        assert!(previous.is_none(), "account id inserted twice");
        self.slots.push(account);
        slot
    }

    /// Removes the most recently inserted account (undo of a failed linked chain).
    pub(crate) fn pop(&mut self) {
        let account = self.slots.pop().expect("pop of an empty account store");
        let removed = self.index.remove(&account.id);
        assert!(removed.is_some());
    }
}
