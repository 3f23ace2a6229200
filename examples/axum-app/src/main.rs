//! `axum-app`: the example application, configured by flags or environment.
//!
//! ```text
//! axum-app --issuer http://keycloak.example.com:8080/realms/mytest \
//!     --client-id nginx --client-secret ... --cookie-secret ... --listen 127.0.0.1:3000
//! ```
//!
//! The issuer's host must resolve for the app (it has no flag to map host
//! names to addresses). `cargo xtask demo --app axum` runs it against Keycloak
//! on 127.0.0.1, whose own URL is then the issuer, with the secrets in the
//! environment:
//!
//! ```text
//! OIDC_CLIENT_SECRET=nginx-client-secret-for-tests-only COOKIE_SECRET=<32 random hex digits> \
//!     axum-app --issuer=http://127.0.0.1:8080/realms/mytest --client-id=nginx \
//!     --listen=127.0.0.1:3000
//! ```

use std::net::SocketAddr;

use clap::Parser;
use tower_oidc::OidcLayer;
use tower_oidc::oidc_core::{ClientSecret, Config, CookieSettings, Engine};

/// An axum application protected by tower-oidc.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// OpenID Connect issuer URL, exactly as the provider names it.
    #[arg(long, env = "OIDC_ISSUER_URL")]
    issuer: String,
    /// OAuth client id.
    #[arg(long, env = "OIDC_CLIENT_ID", default_value = "nginx")]
    client_id: String,
    /// OAuth client secret.
    #[arg(long, env = "OIDC_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// Cookie secret: 16, 24 or 32 bytes, raw or base64
    /// (`openssl rand -base64 32 | tr -- '+/' '-_'`).
    #[arg(long, env = "COOKIE_SECRET", hide_env_values = true)]
    cookie_secret: String,
    /// Address to listen on.
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Mark cookies `Secure` (serve over HTTPS then).
    #[arg(long, env = "COOKIE_SECURE", default_value_t = false)]
    cookie_secure: bool,
    /// Fixed callback URL; derived from each request's host when unset.
    #[arg(long, env = "REDIRECT_URL")]
    redirect_url: Option<String>,
    /// Audiences accepted in bearer tokens (default: the client id); repeat or
    /// separate with commas.
    #[arg(long = "audience", env = "AUDIENCES", value_delimiter = ',')]
    audiences: Vec<String>,
    /// Realm role needed for /admin.
    #[arg(long, env = "ADMIN_ROLE", default_value = "admin")]
    admin_role: String,
    /// Client role (of the client id) needed for /api/reports.
    #[arg(long, env = "EDITOR_ROLE", default_value = "editor")]
    editor_role: String,
    /// Keycloak identity provider to go to directly (`kc_idp_hint`).
    #[arg(long, env = "KC_IDP_HINT")]
    kc_idp_hint: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();

    let mut config = Config::builder(&args.issuer, &args.client_id)
        .cookie_secret(&args.cookie_secret)
        .cookie(CookieSettings {
            name: "_axum_app".into(),
            secure: args.cookie_secure,
            ..CookieSettings::default()
        })
        .skip_provider_button(true)
        .email_domains(vec!["*".into()]);
    if let Some(secret) = &args.client_secret {
        config = config.client_secret(ClientSecret::new(secret));
    }
    if let Some(url) = &args.redirect_url {
        config = config.redirect_url(url);
    }
    if let Some(hint) = &args.kc_idp_hint {
        config = config.extra_auth_param("kc_idp_hint", hint);
    }
    let engine = Engine::new(config.build()?)?;
    // Serve at once; logins and bearer tokens answer 503 until discovery succeeds.
    tokio::spawn({
        let engine = engine.clone();
        async move { engine.discover_until_ready().await }
    });

    let mut bearer = engine.bearer_validator();
    for audience in &args.audiences {
        bearer = bearer.audience(audience);
    }
    let oidc = OidcLayer::new(engine).bearer(bearer.build()?);
    let roles = axum_app::Roles {
        admin_realm_role: args.admin_role,
        api_client: args.client_id,
        api_client_role: args.editor_role,
    };
    let app = axum_app::app(oidc, &roles);

    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(url = %format!("http://{}/", listener.local_addr()?), "axum-app listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
