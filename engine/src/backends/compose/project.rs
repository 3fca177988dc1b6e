//! Where a compose backend's project lives and the global flags that select it: `-f`,
//! `-p`, `--project-directory`, `--env-file`, `--profile`, plus this run's override files.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::backends::{ActionError, ErrorKind};
use crate::spec::ComposeBackendSpec;

/// The files compose looks for when no `-f` is given, in its order.
const DEFAULT_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];
/// Merged automatically by compose next to a default file (only when no `-f` is given).
const DEFAULT_OVERRIDES: &[&str] = &[
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// A compose backend resolved against the runbook's directory and the run's directory.
#[derive(Debug, Clone)]
pub struct Project {
    spec: ComposeBackendSpec,
    base_dir: PathBuf,
    /// Where this backend's override files live in this run.
    pub override_dir: PathBuf,
}

impl Project {
    pub fn new(spec: &ComposeBackendSpec, base_dir: &Path, run_dir: &Path) -> Self {
        let mut p = Project {
            spec: spec.clone(),
            base_dir: base_dir.to_path_buf(),
            override_dir: PathBuf::new(),
        };
        p.override_dir = run_dir.join(format!("compose-{}", p.key()));
        p
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let p = crate::backends::expand_home(p);
        if p.is_absolute() {
            p
        } else {
            self.base_dir.join(p)
        }
    }

    /// The directory compose runs in: `project_directory`, else the runbook's.
    pub fn cwd(&self) -> PathBuf {
        match &self.spec.project_directory {
            Some(d) if !d.is_empty() => self.resolve(d),
            _ => self.base_dir.clone(),
        }
    }

    /// A stable name for this project within a run: two backends naming the same project
    /// share their overrides, two different projects never do.
    fn key(&self) -> String {
        let identity = format!(
            "{}\0{}\0{}",
            self.spec
                .file
                .as_deref()
                .map(|f| self.resolve(f))
                .unwrap_or_default()
                .display(),
            self.spec.project.as_deref().unwrap_or_default(),
            self.cwd().display()
        );
        let hash = hex::encode(&Sha256::digest(identity.as_bytes())[..4]);
        let label = self
            .spec
            .project
            .clone()
            .or_else(|| {
                self.cwd()
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "project".into());
        format!("{}-{hash}", sanitize(&label))
    }

    /// The user's compose files, as `-f` would name them. With no `file`, compose's own
    /// lookup applies, which an extra `-f` would switch off: so when overrides are added,
    /// the default files are named explicitly.
    fn user_files(&self, with_overrides: bool) -> Result<Vec<PathBuf>, ActionError> {
        if let Some(f) = self.spec.file.as_deref().filter(|f| !f.is_empty()) {
            return Ok(vec![self.resolve(f)]);
        }
        if !with_overrides {
            return Ok(vec![]);
        }
        let dir = self.cwd();
        let Some(main) = DEFAULT_FILES
            .iter()
            .map(|f| dir.join(f))
            .find(|p| p.is_file())
        else {
            return Err(ActionError::new(
                ErrorKind::Invalid,
                format!(
                    "no compose file in {} (looked for {}); set the backend's `file`",
                    dir.display(),
                    DEFAULT_FILES.join(", ")
                ),
            ));
        };
        let mut files = vec![main];
        files.extend(
            DEFAULT_OVERRIDES
                .iter()
                .map(|f| dir.join(f))
                .find(|p| p.is_file()),
        );
        Ok(files)
    }

    /// The global flags, with the given override files after the user's files.
    pub fn global_args(&self, overrides: &[PathBuf]) -> Result<Vec<String>, ActionError> {
        let mut a = vec![];
        for f in self
            .user_files(!overrides.is_empty())?
            .iter()
            .chain(overrides)
        {
            a.push("-f".to_string());
            a.push(f.display().to_string());
        }
        if let Some(p) = self.spec.project.as_deref().filter(|p| !p.is_empty()) {
            a.push("-p".into());
            a.push(p.into());
        }
        if let Some(d) = self
            .spec
            .project_directory
            .as_deref()
            .filter(|d| !d.is_empty())
        {
            a.push("--project-directory".into());
            a.push(self.resolve(d).display().to_string());
        }
        if let Some(e) = self.spec.env_file.as_deref().filter(|e| !e.is_empty()) {
            a.push("--env-file".into());
            a.push(self.resolve(e).display().to_string());
        }
        for p in &self.spec.profiles {
            a.push("--profile".into());
            a.push(p.clone());
        }
        Ok(a)
    }
}

/// Keeps letters, digits, `-`, `_` and `.`: the rest become `_` (file names from names).
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(file: Option<&str>, project: Option<&str>) -> ComposeBackendSpec {
        ComposeBackendSpec {
            file: file.map(String::from),
            project: project.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn global_flags_resolve_paths_against_the_runbook() {
        let mut s = spec(Some("stack/compose.yaml"), Some("shop"));
        s.env_file = Some("prod.env".into());
        s.profiles = vec!["debug".into()];
        s.project_directory = Some("/srv/shop".into());
        let p = Project::new(&s, Path::new("/rb"), Path::new("/runs/r1"));
        assert_eq!(
            p.global_args(&[PathBuf::from("/runs/r1/x/web.yaml")])
                .unwrap(),
            [
                "-f",
                "/rb/stack/compose.yaml",
                "-f",
                "/runs/r1/x/web.yaml",
                "-p",
                "shop",
                "--project-directory",
                "/srv/shop",
                "--env-file",
                "/rb/prod.env",
                "--profile",
                "debug"
            ]
        );
        assert_eq!(p.cwd(), PathBuf::from("/srv/shop"));
        assert!(p.override_dir.starts_with("/runs/r1"));
        assert!(p
            .override_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("compose-shop-"));
    }

    #[test]
    fn overrides_without_a_file_name_the_default_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = Project::new(&spec(None, None), dir.path(), Path::new("/runs/r1"));
        assert!(p.global_args(&[]).unwrap().is_empty());
        let e = p.global_args(&[PathBuf::from("/o.yaml")]).unwrap_err();
        assert!(
            e.message.contains("set the backend's `file`"),
            "{}",
            e.message
        );
        std::fs::write(dir.path().join("docker-compose.yml"), "services: {}\n").unwrap();
        std::fs::write(
            dir.path().join("docker-compose.override.yml"),
            "services: {}\n",
        )
        .unwrap();
        let a = p.global_args(&[PathBuf::from("/o.yaml")]).unwrap();
        let files: Vec<&String> = a.iter().skip(1).step_by(2).collect();
        assert!(files[0].ends_with("docker-compose.yml"));
        assert!(files[1].ends_with("docker-compose.override.yml"));
        assert_eq!(files[2], "/o.yaml");
    }

    #[test]
    fn different_projects_get_different_override_dirs() {
        let a = Project::new(
            &spec(Some("a.yaml"), None),
            Path::new("/rb"),
            Path::new("/r"),
        );
        let b = Project::new(
            &spec(Some("b.yaml"), None),
            Path::new("/rb"),
            Path::new("/r"),
        );
        let a2 = Project::new(
            &spec(Some("/rb/a.yaml"), None),
            Path::new("/rb"),
            Path::new("/r"),
        );
        assert_ne!(a.override_dir, b.override_dir);
        assert_eq!(a.override_dir, a2.override_dir);
        assert_eq!(sanitize("my app/1"), "my_app_1");
    }
}
