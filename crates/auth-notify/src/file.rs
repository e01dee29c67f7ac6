//! [`FileMailer`]: development drop that writes each message to a file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use auth_core::mail::{DeliveryError, EmailMessage, Mailer};
use chrono::Utc;
use lettre::message::Mailbox;
use uuid::Uuid;

use crate::message;

/// Writes each message as an RFC 5322 `.eml` file (`<UTC timestamp>-<uuid>.eml`, mode 0600
/// on unix) into a directory, for development without a mail server. Open the file with a
/// mail client, or read the link in it.
///
/// Logs the file, recipient and subject at `info`; never the body, which carries links and
/// codes.
#[derive(Debug, Clone)]
pub struct FileMailer {
    dir: PathBuf,
    from: Mailbox,
}

impl FileMailer {
    /// Validates `from` (`"Name <addr>"` or `addr`; the error names `mail.from`) and creates
    /// `dir` (mode 0700 on unix) if it does not exist.
    pub fn new(dir: PathBuf, from: String) -> Result<Self, String> {
        let from = message::parse_from(&from)?;
        create_dir(&dir).map_err(|e| format!("mail directory {}: {e}", dir.display()))?;
        if !dir.is_dir() {
            return Err(format!(
                "mail directory {}: exists and is not a directory",
                dir.display()
            ));
        }
        Ok(Self { dir, from })
    }

    /// The directory the files go to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        let email = message::build(&self.from, message)?;
        let name = format!(
            "{}-{}.eml",
            Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            Uuid::new_v4()
        );
        let path = self.dir.join(name);
        let bytes = email.formatted();
        let target = path.clone();
        tokio::task::spawn_blocking(move || write_new(&target, &bytes))
            .await
            .map_err(|e| DeliveryError::Transient(format!("mail file writer failed: {e}")))?
            .map_err(|e| {
                DeliveryError::Transient(format!("cannot write {}: {e}", path.display()))
            })?;
        tracing::info!(
            path = %path.display(),
            to = %message.to,
            subject = %message::one_line(&message.subject),
            "mail written to file"
        );
        Ok(())
    }
}

#[cfg(unix)]
fn create_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

/// Writes `bytes` to a new file (never overwrites), readable by the owner only on unix.
/// The bytes go to a hidden `.NAME.partial` first and are linked under the final name once
/// complete, so a reader of the directory never sees half a file.
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| std::io::Error::other("the file has no name"))?;
    let partial = path.with_file_name(format!(".{name}.partial"));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&partial).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    // `hard_link` fails when the final name exists: nothing is ever replaced.
    let result = written.and_then(|()| fs::hard_link(&partial, path));
    let _ = fs::remove_file(&partial);
    result
}
