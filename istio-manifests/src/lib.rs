//! `istio-manifests`: the Istio side of an `ext-authz-adapter` deployment, rendered from one
//! set of settings and linted, and the header lists the product promises Envoy.
//!
//! - [`render()`] prints the mesh config's `extensionProviders` entry, the Gateway, the
//!   VirtualService (or, with the Gateway API, the HTTPRoute), the CUSTOM AuthorizationPolicy,
//!   the gateway's EnvoyFilter and (optionally) the adapter's Service, made from one
//!   [`Settings`] so that they agree: the provider name, service host and port, header lists,
//!   hosts and callback path.
//! - [`check_sources`] reads manifests and reports each problem as `FILE:LINE: problem. fix:
//!   ...` ([`Finding`]).
//! - [`envoy_contract`] holds the header lists of the `envoyExtAuthzHttp` provider, which the
//!   renderer writes, the linter asks for and the tests' Envoy uses.
//! - [`IstioArgs`] is the command line of `ext-authz-adapter istio`.
//!
//! ```
//! use istio_manifests::{CheckOptions, Settings, Source, check_sources, render};
//!
//! let yaml = render(&Settings::seed());
//! assert!(yaml.contains("kind: AuthorizationPolicy"));
//! let findings = check_sources(
//!     &[Source { name: "generated.yaml".to_owned(), text: yaml }],
//!     &CheckOptions::default(),
//! );
//! assert!(findings.is_empty(), "{findings:?}");
//! ```

// `IstioArgs`' doc comments are `--help` text for a terminal (`<proxy-prefix>/callback`).
#![allow(rustdoc::invalid_html_tags)]

pub mod args;
pub mod check;
pub mod envoy_contract;
pub mod names;
pub mod render;
pub mod yaml;

pub use args::{IstioArgs, read_sources};
pub use check::{CheckOptions, Finding, Source, check_sources};
pub use render::{Ingress, MeshFormat, Mode, Part, Settings, render, render_parts};
