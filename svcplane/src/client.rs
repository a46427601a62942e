//! The Kubernetes client of the subcommands that run against a cluster: from `--kubeconfig`
//! or the inferred config, with a User-Agent that names the writer in audit logs.

use std::path::PathBuf;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// A client from `--kubeconfig` (or the inferred config) that sends `user_agent`.
pub async fn client(
    kubeconfig: Option<&PathBuf>,
    user_agent: &str,
) -> anyhow::Result<kube::Client> {
    Ok(kube::Client::try_from(
        kube_config(kubeconfig, user_agent).await?,
    )?)
}

/// The config from `--kubeconfig` (or the inferred one), sending `user_agent`.
pub async fn kube_config(
    kubeconfig: Option<&PathBuf>,
    user_agent: &str,
) -> anyhow::Result<kube::Config> {
    let mut config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no --kubeconfig, KUBECONFIG, ~/.kube/config or in-cluster config")?,
    };
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(user_agent).context("user agent")?,
    ));
    Ok(config)
}
