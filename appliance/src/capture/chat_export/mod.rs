//! WhatsApp "Export chat" files (Android and iOS, `.txt` or `.zip` with
//! attachments): the text parsed into messages ([`parse`]) and the whole
//! export stored ([`import`]).

pub mod import;
pub mod parse;

pub use import::import;
