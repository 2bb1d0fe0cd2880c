//! Reading the environment: a set value or the default, parsed, or an error naming the
//! variable.

use super::ConfigError;
use std::fmt;
use std::time::Duration;
use url::Url;

/// The collector's URL, checked here so that a bad one stops the start naming the variable.
pub(super) fn otlp_endpoint(env: &Env) -> Result<Option<Url>, ConfigError> {
    for variable in [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ] {
        if let Some(value) = env.get(variable) {
            return match Url::parse(&value) {
                Ok(url) if url.scheme() == "http" => Ok(Some(url)),
                _ => Err(ConfigError {
                    variable,
                    message: format!(
                        "must be the http:// URL of an OTLP collector (a local agent \
                         forwards over TLS), not {value:?}"
                    ),
                }),
            };
        }
    }
    Ok(None)
}

/// The HTTPS certificate and key: both or neither.
pub(super) fn tls_files(env: &Env) -> Result<Option<super::TlsFiles>, ConfigError> {
    let missing = |variable, other| ConfigError {
        variable,
        message: format!("must be set with {other}"),
    };
    match (
        env.get("GATEHOUSE_TLS_CERT_FILE"),
        env.get("GATEHOUSE_TLS_KEY_FILE"),
    ) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(super::TlsFiles {
            cert: cert.into(),
            key: key.into(),
        })),
        (Some(_), None) => Err(missing("GATEHOUSE_TLS_KEY_FILE", "GATEHOUSE_TLS_CERT_FILE")),
        (None, Some(_)) => Err(missing("GATEHOUSE_TLS_CERT_FILE", "GATEHOUSE_TLS_KEY_FILE")),
    }
}

pub(super) struct Env<'a>(pub(super) &'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    /// A set, non-blank value; blank counts as unset.
    pub(super) fn get(&self, key: &str) -> Option<String> {
        (self.0)(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub(super) fn parse_with<T>(
        &self,
        key: &'static str,
        default: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let value = self.get(key).unwrap_or_else(|| default.to_owned());
        parse(&value).map_err(|message| ConfigError {
            variable: key,
            message,
        })
    }

    pub(super) fn number<T>(
        &self,
        key: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let Some(value) = self.get(key) else {
            return Ok(default);
        };
        match value.parse::<T>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(ConfigError {
                variable: key,
                message: format!(
                    "must be a whole number from {} to {}, not {value:?}",
                    range.start(),
                    range.end()
                ),
            }),
        }
    }

    pub(super) fn duration(
        &self,
        key: &'static str,
        default: &str,
    ) -> Result<Duration, ConfigError> {
        self.parse_with(key, default, |v| match humantime::parse_duration(v) {
            Ok(d) if !d.is_zero() => Ok(d),
            _ => Err(format!(
                "must be a duration like 90s, 60m, 72h or 14d, not {v:?}"
            )),
        })
    }
}

/// Addresses or CIDRs, separated by commas or spaces; a bare address is a single host.
pub(super) fn parse_proxies(text: &str) -> Result<Vec<ipnet::IpNet>, String> {
    text.split([',', ' '])
        .filter(|item| !item.trim().is_empty())
        .map(|item| {
            let item = item.trim();
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    format!("{item:?} is neither an IP address nor a CIDR such as 10.0.0.0/8")
                })
        })
        .collect()
}

/// Web origins (`https://portal.example.com`, a port if any, nothing after it), or `*`.
pub(super) fn parse_origins(text: &str) -> Result<Vec<String>, String> {
    text.split([',', ' '])
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            if item == "*" {
                return Ok(item.to_owned());
            }
            let origin = Url::parse(item)
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https"))
                .map(|url| url.origin().ascii_serialization());
            match origin {
                Some(origin) if origin == item.trim_end_matches('/') => Ok(origin),
                _ => Err(format!(
                    "{item:?} is not a web origin such as https://portal.example.com (or *)"
                )),
            }
        })
        .collect()
}
