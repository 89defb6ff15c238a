//! WhatsApp "Export chat" files (Android and iOS, `.txt` or `.zip` with
//! attachments): the text parsed into messages ([`parse`]: headers read by
//! [`header`], the app's own strings in [`markers`]) and the whole export
//! stored ([`import`]).

mod header;
pub mod import;
mod markers;
pub mod parse;
