//! The override files behind `compose.set_image`: one small compose file per service,
//! `services.<service>.image: <image>`, in the run's directory. Every later call of the same
//! backend in the run passes them with `-f`, so `up` and `ps` see the image that was set and
//! the user's compose files are never edited. Setting the image back to what the user's
//! files say removes the file. The directory is the state: a resumed run sees it too.

use std::path::{Path, PathBuf};

use super::project::sanitize;
use crate::backends::{ActionError, ErrorKind};

/// The override file of `service` in `dir`.
pub fn path(dir: &Path, service: &str) -> PathBuf {
    dir.join(format!("compose-override-{}.yaml", sanitize(service)))
}

/// Every override file of the project, in a stable order.
pub fn all(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("compose-override-") && n.ends_with(".yaml"))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The compose file text. JSON is YAML, and JSON string quoting is safe for any name or
/// image, so no YAML writer is needed.
pub fn text(service: &str, image: &str) -> String {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    format!(
        "# written by runbook (compose set_image); the user's compose files are untouched\nservices:\n  {}:\n    image: {}\n",
        q(service),
        q(image)
    )
}

/// The image an existing override file sets, if any.
pub fn image_in(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let v: serde_json::Value = serde_saphyr::from_str(&text).ok()?;
    let services = v.get("services")?.as_object()?;
    services
        .values()
        .next()?
        .get("image")?
        .as_str()
        .map(str::to_string)
}

/// Writes (or, with `None`, removes) the override of `service`. Returns what was there
/// before, to put back if the change fails to apply.
pub fn set(dir: &Path, service: &str, image: Option<&str>) -> Result<Option<String>, ActionError> {
    let file = path(dir, service);
    let before = std::fs::read_to_string(&file).ok();
    let io = |e: std::io::Error| {
        ActionError::new(
            ErrorKind::Failed,
            format!("cannot write the override file {}: {e}", file.display()),
        )
    };
    match image {
        Some(img) => {
            std::fs::create_dir_all(dir).map_err(io)?;
            let tmp = file.with_extension("yaml.tmp");
            std::fs::write(&tmp, text(service, img)).map_err(io)?;
            std::fs::rename(&tmp, &file).map_err(io)?;
        }
        None => {
            if file.exists() {
                std::fs::remove_file(&file).map_err(io)?;
            }
        }
    }
    Ok(before)
}

/// Puts back the text `set` returned.
pub fn restore(dir: &Path, service: &str, before: Option<String>) {
    let file = path(dir, service);
    let _ = match before {
        Some(t) => std::fs::write(&file, t),
        None => std::fs::remove_file(&file),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_and_removal_clears_them() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("compose-shop-1234");
        assert!(all(&d).is_empty());
        assert_eq!(set(&d, "web", Some("localhost/web:v2")).unwrap(), None);
        let f = path(&d, "web");
        assert_eq!(image_in(&f).as_deref(), Some("localhost/web:v2"));
        assert_eq!(all(&d), vec![f.clone()]);
        let before = set(&d, "web", None).unwrap();
        assert!(before.unwrap().contains("localhost/web:v2"));
        assert!(all(&d).is_empty());
    }

    #[test]
    fn odd_names_are_quoted_not_injected() {
        let t = text("we\"b", "img:1\nservices: {}");
        let v: serde_json::Value = serde_saphyr::from_str(&t).unwrap();
        assert_eq!(v["services"]["we\"b"]["image"], "img:1\nservices: {}");
    }
}
