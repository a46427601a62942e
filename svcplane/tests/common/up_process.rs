//! `svcplane up` as a child process: started on a port, its kubeconfig awaited, stopped by
//! SIGTERM (and killed if a test panics first).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};

/// A running `svcplane up`.
pub struct Up {
    pub child: Option<Child>,
    pub kubeconfig: PathBuf,
}

/// Starts `svcplane up` on `127.0.0.1:port`, writing its kubeconfig under `dir`.
pub fn spawn_up(dir: &Path, port: u16, extra: &[&str]) -> Up {
    let kubeconfig = dir.join("kube").join("config");
    let child = Command::new(env!("CARGO_BIN_EXE_svcplane"))
        .arg("up")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Up {
        child: Some(child),
        kubeconfig,
    }
}

impl Up {
    fn child(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("svcplane up was already stopped")
    }

    /// Waits for the kubeconfig, which `up` writes once everything is ready (in seconds; a real
    /// control plane's take several).
    pub async fn client(&mut self) -> kube::Client {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.kubeconfig.exists() {
            if let Some(status) = self.child().try_wait().unwrap() {
                panic!("svcplane up exited early with {status}");
            }
            assert!(Instant::now() < deadline, "no kubeconfig after 60s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    /// Sends SIGTERM and collects the exit status and output.
    pub fn terminate(mut self) -> Output {
        let mut child = self.child.take().expect("svcplane up was already stopped");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "svcplane up ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }
}

/// A test that panics must not leave the playground running, nor what it made (a data plane's
/// namespaces): SIGTERM first, so it cleans up, and SIGKILL if it has not ended in 10 s.
impl Drop for Up {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
