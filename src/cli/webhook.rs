//! `cgview webhook` and `cgview webhook certs`.

use cgview::catalog::ServedFile;
use cgview::error_chain;
use cgview::webhook::certs::{self, CertRequest};
use cgview::webhook::options::{self as webhook_options, DEFAULT_FILES_ARG};
use cgview::webhook::policy::{InjectionConfig, DEFAULT_MOUNT_ROOT};
use cgview::webhook::server::{self as webhook_server, ServeOptions};
use clap::{ArgAction, Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WebhookArgs {
    #[command(subcommand)]
    command: Option<WebhookCommand>,
    #[command(flatten)]
    serve: WebhookServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Generate a CA and a serving certificate for the webhook's Service (without cert-manager).
    ///
    /// Prints a `kubernetes.io/tls` Secret manifest, and on standard error the caBundle and the
    /// `kubectl patch` that puts it into the MutatingWebhookConfiguration; or, with --out-dir, writes
    /// them as a kustomize component.
    Certs(CertsArgs),
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Webhook options")]
pub struct WebhookServeArgs {
    /// Where to serve HTTPS.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8443")]
    listen: std::net::SocketAddr,
    /// PEM certificate chain, reloaded when the file changes (a Secret update, a renewal).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/cgview-webhook/tls/tls.crt"
    )]
    tls_cert: PathBuf,
    /// PEM private key of --tls-cert, reloaded with it.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/cgview-webhook/tls/tls.key"
    )]
    tls_key: PathBuf,
    /// Where the DaemonSet mounts cgview on every node; the injected hostPath volumes point into it.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_MOUNT_ROOT,
          value_parser = webhook_options::parse_absolute_path)]
    mount_root: String,
    /// The files to inject, comma-separated: paths in cgview's tree, which are also their paths in the
    /// container (a leading `/` is accepted).
    #[arg(long, value_name = "PATHS", value_delimiter = ',', default_value = DEFAULT_FILES_ARG.as_str(),
          value_parser = webhook_options::parse_served_file)]
    files: Vec<ServedFile>,
    /// Whether init containers get the files too.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set)]
    init_containers: bool,
    /// Also mount the node's cgview directory itself at PATH in every container (read-only, with
    /// HostToContainer propagation).
    #[arg(long, value_name = "PATH", value_parser = webhook_options::parse_absolute_path)]
    host_dir_mount_path: Option<String>,
    /// A namespace whose pods are never injected; repeat it or separate with commas.
    /// `--skip-namespace ''` skips none.
    #[arg(
        long,
        value_name = "NS",
        value_delimiter = ',',
        default_value = "kube-system"
    )]
    skip_namespace: Vec<String>,
    /// Seconds to keep serving after SIGTERM, with /readyz already answering 503, so the Service stops
    /// sending reviews here before the listener closes.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    shutdown_delay: u64,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Certificate options")]
pub struct CertsArgs {
    /// The webhook's namespace.
    #[arg(long, value_name = "NS", default_value = certs::DEFAULT_NAMESPACE)]
    namespace: String,
    /// The webhook's Service; the certificate is valid for its in-cluster DNS names.
    #[arg(long, value_name = "NAME", default_value = certs::DEFAULT_SERVICE)]
    service: String,
    /// The Secret's name.
    #[arg(long, value_name = "NAME", default_value = certs::DEFAULT_SECRET)]
    secret: String,
    /// Validity of both the CA and the serving certificate. Nothing renews them: generate and apply a
    /// new pair before they expire (cert-manager, if installed, renews its own).
    #[arg(long, value_name = "N", default_value_t = certs::DEFAULT_DAYS,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(certs::MAX_DAYS)))]
    days: u32,
    /// How many webhooks the MutatingWebhookConfiguration `cgview-webhook` has; each gets the caBundle.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..))]
    webhooks: u8,
    /// Write ca.crt, tls.crt, tls.key, secret.yaml, ca-bundle, ca-bundle-patch.yaml and a kustomize
    /// Component (kustomization.yaml) into DIR, created if missing, instead of printing; an overlay then
    /// lists `components: [<path to daemonset/webhook>, DIR]`.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Replace the key pair already in --out-dir.
    #[arg(long, requires = "out_dir")]
    force: bool,
}

pub fn run(args: WebhookArgs) -> Result<(), String> {
    match args {
        WebhookArgs {
            command: Some(WebhookCommand::Certs(args)),
            ..
        } => webhook_certs(args),
        WebhookArgs {
            command: None,
            serve,
        } => webhook_serve(serve),
    }
}

/// `cgview webhook`: serves until SIGTERM or SIGINT.
fn webhook_serve(args: WebhookServeArgs) -> Result<(), String> {
    let options = ServeOptions {
        listen: args.listen,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        injection: InjectionConfig {
            mount_root: args.mount_root,
            files: webhook_options::distinct_files(args.files),
            init_containers: args.init_containers,
            host_dir_mount_path: args.host_dir_mount_path,
            skip_namespaces: webhook_options::skipped_namespaces(args.skip_namespace),
        },
        shutdown_delay: std::time::Duration::from_secs(args.shutdown_delay),
    };
    webhook_server::run(options).map_err(|e| error_chain(&e))
}

/// `cgview webhook certs`: prints the Secret and the CA bundle, or writes them into --out-dir.
fn webhook_certs(args: CertsArgs) -> Result<(), String> {
    let request = CertRequest {
        namespace: args.namespace,
        service: args.service,
        secret: args.secret,
        days: args.days,
        webhooks: usize::from(args.webhooks),
    };
    let generated =
        certs::generate(&request, std::time::SystemTime::now()).map_err(|e| error_chain(&e))?;
    let Some(dir) = args.out_dir else {
        let manifest = generated.secret_manifest().map_err(|e| error_chain(&e))?;
        let patch = generated
            .kubectl_patch_command()
            .map_err(|e| error_chain(&e))?;
        print!("{manifest}");
        eprintln!("caBundle: {}", generated.ca_bundle);
        eprintln!("{patch}");
        return Ok(());
    };
    let written = certs::write_dir(&generated, &dir, args.force).map_err(|e| error_chain(&e))?;
    for path in written {
        println!("wrote {}", path.display());
    }
    println!(
        "use it from an overlay: components: [<path to daemonset/webhook>, {}]",
        dir.display()
    );
    Ok(())
}
