//! Keys: root and data keys with the tags and MACs derived from them, the
//! keystore that keeps them wrapped, the key-encryption keys (file or
//! PKCS#11) that wrap them, and the rollback anchors signed with them.

pub mod anchor;
pub mod kek;
pub mod keyring;
pub mod keys;
