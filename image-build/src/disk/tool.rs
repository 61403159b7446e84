//! Running the file system and boot tools the disk images are made with.

use std::process::{Command, Stdio};

use super::DiskError;

/// Runs `cmd`, which comes from `package`; its stderr is the error when it fails.
pub fn run(cmd: &mut Command, package: &str) -> Result<(), DiskError> {
    stderr_of(cmd, package).map(drop)
}

/// Runs `cmd` like [`run`] and returns what it wrote to stderr when it succeeds.
pub fn stderr_of(cmd: &mut Command, package: &str) -> Result<String, DiskError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    log::debug!("disk: {cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| DiskError::Spawn {
            program: program.clone(),
            package: package.to_string(),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    } else {
        Err(DiskError::Failed {
            program,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
