//! Mail the OP sends (password-reset and email-verification links), over SMTP with lettre.

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{Config, ConfigError};

/// How long one delivery to the SMTP server may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(20);

/// What a mail is, for the metrics and the log (never its link).
#[derive(Debug, Clone, Copy)]
pub enum MailKind {
    PasswordReset,
    EmailVerification,
}

impl MailKind {
    fn as_str(self) -> &'static str {
        match self {
            MailKind::PasswordReset => "password_reset",
            MailKind::EmailVerification => "email_verification",
        }
    }
}

/// One mail, ready to go.
pub struct Mail {
    pub kind: MailKind,
    pub to: String,
    pub subject: String,
    pub body: String,
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// The mailer `smtp_url` and `mail_from` describe; none without `smtp_url`. Nothing is connected
    /// yet: a bad URL or address is a configuration error at start, an unreachable server a failed mail.
    pub fn from_config(config: &Config) -> Result<Option<Self>, ConfigError> {
        let Some(url) = config.smtp_url.as_deref() else { return Ok(None) };
        // lettre's own error would echo the URL, password and all; name the setting instead.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|_| {
                ConfigError("smtp_url must be smtp://[USER:PASSWORD@]HOST[:PORT][?tls=required] or smtps://...".into())
            })?
            .timeout(Some(SEND_TIMEOUT))
            .build();
        let from = match &config.mail_from {
            Some(from) => from.parse::<Mailbox>().map_err(|e| ConfigError(format!("mail_from {from:?}: {e}")))?,
            None => {
                let host = url::Url::parse(&config.issuer).ok().and_then(|u| u.host_str().map(str::to_owned));
                let host = host.unwrap_or_else(|| "localhost".into());
                format!("oxid <no-reply@{host}>")
                    .parse()
                    .map_err(|_| ConfigError("set mail_from: the issuer's host makes no mail address".into()))?
            }
        };
        Ok(Some(Self { transport, from }))
    }

    async fn send(&self, mail: &Mail) -> Result<(), String> {
        let to: Mailbox = mail.to.parse().map_err(|e| format!("recipient: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&mail.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|e| e.to_string())?;
        self.transport.send(message).await.map(drop).map_err(|e| e.to_string())
    }

    /// Hands `mail` to the SMTP server. A failure is logged (without the link, which is a
    /// credential) and counted; the user, who was already answered, asks again.
    pub async fn deliver(&self, mail: Mail) {
        let kind = mail.kind.as_str();
        match self.send(&mail).await {
            Ok(()) => crate::telemetry::mail(kind, "sent"),
            Err(error) => {
                crate::telemetry::mail(kind, "failed");
                tracing::warn!(kind, %error, "a mail could not be sent");
            }
        }
    }
}
