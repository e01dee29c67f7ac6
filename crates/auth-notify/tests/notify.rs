//! auth-notify against real peers: an SMTP server on loopback (`SmtpSink`), the file system,
//! and the shipped and overridden templates; the HTTP adapters against an HTTP server on
//! loopback (`http/guard.rs`).
#![allow(clippy::unwrap_used)]

#[path = "http/guard.rs"]
mod guard_http;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auth_core::mail::{
    DeliveryError, EmailMessage, MailIntent, MailRenderer, MailTemplate, Mailer,
};
use auth_notify::testing::{ReceivedMail, SmtpSink};
use auth_notify::{FileMailer, SmtpMailer, SmtpSettings, SmtpTls, TemplateRenderer};
use mail_parser::{MessageParser, MimeHeaders};
use secrecy::SecretString;

const WAIT: Duration = Duration::from_secs(5);
/// Longer than a quoted-printable line, with characters QP must encode (`=`), and a token.
const LINK: &str = "https://auth.example.com/v1/verify-email?token=Zm9vYmFyYmF6cXV4_-0123456789abcdefghijklmnopqrstuvwxyz&redirect_to=%2Fwelcome%3Fa%3D1";

fn settings(port: u16) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".to_owned(),
        port,
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "Auth Test <no-reply@auth.test>".to_owned(),
        timeout: Duration::from_secs(5),
    }
}

fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = [
        ("email", "ada@example.com"),
        ("name", "Ada"),
        ("app_name", "Example Auth"),
        ("app_url", "https://app.example.com"),
        ("link", LINK),
        ("code", "042917"),
        ("expires_in_minutes", "30"),
        ("locked_minutes", "15"),
        ("factor", "An authenticator app"),
        ("remaining", "9"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in pairs {
        map.insert((*k).to_owned(), (*v).to_owned());
    }
    map
}

fn intent(template: MailTemplate, pairs: &[(&str, &str)]) -> MailIntent {
    MailIntent {
        to: "ada@example.com".to_owned(),
        template,
        values: values(pairs),
    }
}

fn shipped() -> TemplateRenderer {
    TemplateRenderer::new(None, "Example Auth".to_owned()).unwrap()
}

fn message(to: &str) -> EmailMessage {
    EmailMessage {
        to: to.to_owned(),
        subject: "Hello".to_owned(),
        text: format!("Open {LINK}\n"),
        html: format!("<p><a href=\"{LINK}\">open</a></p>"),
    }
}

fn to_is(address: &'static str) -> impl Fn(&ReceivedMail) -> bool {
    move |mail| mail.to.iter().any(|to| to == address)
}

// ---------------------------------------------------------------- SmtpMailer

#[tokio::test]
async fn smtp_mailer_delivers_a_multipart_message_to_the_sink() {
    let sink = SmtpSink::start();
    let mailer = SmtpMailer::new(settings(sink.port())).unwrap();
    let rendered = shipped()
        .render(&intent(
            MailTemplate::VerifyEmail,
            &[("name", "Zoë Ünicode")],
        ))
        .unwrap();

    mailer.send(&rendered).await.unwrap();

    let mail = sink
        .wait_for(to_is("ada@example.com"), WAIT)
        .await
        .expect("the sink received the mail");
    assert_eq!(mail.envelope_from, "no-reply@auth.test");
    assert_eq!(mail.from, "Auth Test <no-reply@auth.test>");
    assert_eq!(mail.to, vec!["ada@example.com".to_owned()]);
    assert_eq!(mail.subject, "Confirm your email address for Example Auth");
    assert_eq!(mail.text_body, rendered.text.replace('\n', "\r\n"));
    assert!(
        mail.text_body.contains(&format!("\r\n{LINK}\r\n")),
        "the link survives intact on a line of its own: {}",
        mail.text_body
    );
    assert!(mail.text_body.contains("Hello Zoë Ünicode,"));
    assert!(mail.html_body.contains("Hello Zoë Ünicode,"));
    assert!(
        mail.html_body
            .contains(&format!("href=\"{}\"", LINK.replace('&', "&amp;"))),
        "{}",
        mail.html_body
    );

    let parsed = MessageParser::default().parse(mail.raw.as_bytes()).unwrap();
    assert!(parsed.date().is_some(), "Date header");
    let id = parsed.message_id().expect("Message-ID header");
    assert!(id.ends_with("@auth.test"), "{id}");
    let content_type = parsed.content_type().unwrap();
    assert_eq!(content_type.ctype(), "multipart");
    assert_eq!(content_type.subtype(), Some("alternative"));
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn smtp_mailer_reuses_its_pool_for_concurrent_sends() {
    let sink = SmtpSink::start();
    let mailer = Arc::new(SmtpMailer::new(settings(sink.port())).unwrap());
    let sends = (0..8).map(|i| {
        let mailer = Arc::clone(&mailer);
        tokio::spawn(async move {
            let mut msg = message(&format!("user{i}@example.com"));
            msg.subject = format!("message {i}");
            mailer.send(&msg).await
        })
    });
    for send in sends.collect::<Vec<_>>() {
        send.await.unwrap().unwrap();
    }
    assert!(
        sink.wait_for(to_is("user7@example.com"), WAIT)
            .await
            .is_some(),
        "the last one arrived"
    );
    // Every send returned Ok only after the server's 250 to the data: all are recorded.
    let mut subjects: Vec<String> = sink.messages().into_iter().map(|m| m.subject).collect();
    subjects.sort();
    assert_eq!(subjects.len(), 8);
    assert_eq!(subjects[0], "message 0");
}

#[tokio::test]
async fn sending_while_the_sink_is_stopped_is_transient_and_works_again_after_restart() {
    let sink = SmtpSink::start();
    let port = sink.port();
    let mailer = SmtpMailer::new(settings(port)).unwrap();
    mailer.send(&message("first@example.com")).await.unwrap();
    assert!(
        sink.wait_for(to_is("first@example.com"), WAIT)
            .await
            .is_some()
    );

    sink.stop();
    let started = Instant::now();
    let err = mailer
        .send(&message("second@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Transient(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "fails fast when refused"
    );
    assert!(
        !err.to_string().contains("token="),
        "no body in errors: {err}"
    );
    drop(sink);

    let sink = SmtpSink::start_on(port);
    mailer.send(&message("third@example.com")).await.unwrap();
    let mail = sink.wait_for(to_is("third@example.com"), WAIT).await;
    assert!(mail.is_some());
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn a_refused_recipient_is_permanent_and_a_deferred_one_transient() {
    let sink = SmtpSink::start();
    sink.refuse_recipient("Gone@Example.com");
    sink.defer_recipient("busy@example.com");
    let mailer = SmtpMailer::new(settings(sink.port())).unwrap();

    let err = mailer.send(&message("gone@example.com")).await.unwrap_err();
    match &err {
        DeliveryError::Permanent(text) => assert!(text.contains("550"), "{text}"),
        other => panic!("expected Permanent, got {other:?}"),
    }
    assert!(
        !err.to_string().contains("token="),
        "no body in errors: {err}"
    );

    let err = mailer.send(&message("busy@example.com")).await.unwrap_err();
    match &err {
        DeliveryError::Transient(text) => assert!(text.contains("450"), "{text}"),
        other => panic!("expected Transient, got {other:?}"),
    }

    sink.accept_recipient("busy@example.com");
    mailer.send(&message("busy@example.com")).await.unwrap();
    assert!(
        sink.wait_for(to_is("busy@example.com"), WAIT)
            .await
            .is_some()
    );
    assert_eq!(
        sink.messages().len(),
        1,
        "nothing was accepted for the refused ones"
    );
}

#[tokio::test]
async fn an_invalid_recipient_address_is_permanent() {
    let sink = SmtpSink::start();
    let mailer = SmtpMailer::new(settings(sink.port())).unwrap();
    for bad in [
        "not an address",
        "",
        "a@b@c",
        "x@example.com\r\nBcc: y@example.com",
    ] {
        let err = mailer.send(&message(bad)).await.unwrap_err();
        assert!(
            matches!(err, DeliveryError::Permanent(_)),
            "{bad:?}: {err:?}"
        );
    }
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_as_transient() {
    // Accepts TCP connections (the kernel does) but never sends a greeting.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut settings = settings(silent.local_addr().unwrap().port());
    settings.timeout = Duration::from_millis(300);
    let mailer = SmtpMailer::new(settings).unwrap();
    let started = Instant::now();
    let err = mailer.send(&message("ada@example.com")).await.unwrap_err();
    assert!(matches!(err, DeliveryError::Transient(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn smtp_auth_uses_the_credentials_and_a_rejected_login_is_transient() {
    let sink = SmtpSink::start_requiring_auth("mailer", "s3cret");

    let mut good = settings(sink.port());
    good.username = Some("mailer".to_owned());
    good.password = Some(SecretString::from("s3cret"));
    SmtpMailer::new(good)
        .unwrap()
        .send(&message("ada@example.com"))
        .await
        .unwrap();
    assert!(
        sink.wait_for(to_is("ada@example.com"), WAIT)
            .await
            .is_some()
    );

    let mut wrong = settings(sink.port());
    wrong.username = Some("mailer".to_owned());
    wrong.password = Some(SecretString::from("wrong"));
    let err = SmtpMailer::new(wrong)
        .unwrap()
        .send(&message("bob@example.com"))
        .await
        .unwrap_err();
    // 535: the account is misconfigured, not the message: retry after the fix.
    assert!(matches!(err, DeliveryError::Transient(_)), "{err:?}");
    assert!(
        !err.to_string().contains("wrong"),
        "no password in errors: {err}"
    );

    let anonymous = SmtpMailer::new(settings(sink.port())).unwrap();
    // mailin answers MAIL before AUTH with 503 (bad sequence), where most servers say 530.
    assert!(anonymous.send(&message("carol@example.com")).await.is_err());
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn tls_modes_build_with_rustls_and_fail_transiently_against_a_plain_server() {
    // No crypto provider is installed by this test: lettre must use ring on its own.
    let sink = SmtpSink::start();
    for tls in [SmtpTls::Tls, SmtpTls::StartTls] {
        let mut s = settings(sink.port());
        s.host = "localhost".to_owned();
        s.tls = tls;
        s.timeout = Duration::from_secs(2);
        let mailer = SmtpMailer::new(s).unwrap();
        let err = mailer.send(&message("ada@example.com")).await.unwrap_err();
        assert!(
            matches!(err, DeliveryError::Transient(_)),
            "{tls:?}: {err:?}"
        );
    }
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn test_connection_reports_a_reachable_and_an_unreachable_server() {
    let sink = SmtpSink::start();
    let mailer = SmtpMailer::new(settings(sink.port())).unwrap();
    mailer.test_connection().await.unwrap();
    sink.stop();
    let err = mailer.test_connection().await.unwrap_err();
    assert!(matches!(err, DeliveryError::Transient(_)), "{err:?}");
}

#[test]
fn a_used_mailer_can_be_dropped_after_its_runtime_is_gone() {
    let sink = SmtpSink::start();
    let mailer = SmtpMailer::new(settings(sink.port())).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(mailer.send(&message("ada@example.com")))
        .unwrap();
    drop(runtime);
    // The pool's clean-up would panic outside a runtime; the mailer enters the old one.
    drop(mailer);
    assert_eq!(sink.messages().len(), 1);
}

#[test]
fn smtp_settings_are_validated_without_a_runtime() {
    let mut s = settings(2525);
    s.from = "not a sender".to_owned();
    let err = SmtpMailer::new(s).unwrap_err();
    assert!(err.contains("mail.from"), "{err}");

    let mut s = settings(2525);
    s.from = "no-reply@auth.test".to_owned();
    assert_eq!(
        SmtpMailer::new(s).unwrap().from().to_string(),
        "no-reply@auth.test"
    );

    let mut s = settings(2525);
    s.from = "no-reply@localhost".to_owned();
    assert!(
        SmtpMailer::new(s).is_ok(),
        "the default sender of config/default.toml"
    );

    let mut s = settings(2525);
    s.username = Some("user".to_owned());
    let err = SmtpMailer::new(s).unwrap_err();
    assert!(err.contains("mail.smtp.password"), "{err}");

    let mut s = settings(0);
    s.tls = SmtpTls::Tls;
    assert!(SmtpMailer::new(s).unwrap_err().contains("mail.smtp.port"));

    let mut s = settings(465);
    s.host = " ".to_owned();
    assert!(SmtpMailer::new(s).unwrap_err().contains("mail.smtp.host"));

    assert_eq!("STARTTLS".parse::<SmtpTls>(), Ok(SmtpTls::StartTls));
    assert_eq!("none".parse::<SmtpTls>(), Ok(SmtpTls::None));
    assert!(
        "ssl"
            .parse::<SmtpTls>()
            .unwrap_err()
            .contains("mail.smtp.tls")
    );
}

// ---------------------------------------------------------------- FileMailer

/// Collects what a tracing subscriber writes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn file_mailer_writes_a_parseable_eml_and_logs_no_body() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mail").join("outbox");
    let mailer = FileMailer::new(dir.clone(), "Auth Dev <dev@auth.test>".to_owned()).unwrap();
    assert_eq!(mailer.dir(), dir);
    let rendered = shipped()
        .render(&intent(MailTemplate::EmailOtp, &[("code", "918273")]))
        .unwrap();

    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    {
        let _guard = tracing::subscriber::set_default(subscriber);
        mailer.send(&rendered).await.unwrap();
        mailer.send(&message("bob@example.com")).await.unwrap();
    }

    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2);
    let name = files[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(name.ends_with(".eml"), "{name}");
    assert!(
        name.starts_with("20") && name.contains('T'),
        "timestamped: {name}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in &files {
            let mode = std::fs::metadata(file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        }
    }

    let otp_file = files
        .iter()
        .find(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .contains("ada@example.com")
        })
        .unwrap();
    let raw = std::fs::read(otp_file).unwrap();
    let parsed = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(parsed.subject(), Some("Your Example Auth sign-in code"));
    let from = parsed.from().unwrap().first().unwrap();
    assert_eq!(from.address(), Some("dev@auth.test"));
    assert_eq!(from.name(), Some("Auth Dev"));
    assert_eq!(
        parsed.to().unwrap().first().unwrap().address(),
        Some("ada@example.com")
    );
    assert!(parsed.body_text(0).unwrap().contains("918273"));
    assert!(parsed.body_html(0).unwrap().contains("918273"));
    assert!(parsed.date().is_some() && parsed.message_id().is_some());

    let log = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("mail written to file"), "{log}");
    assert!(
        log.contains(otp_file.to_str().unwrap()),
        "path logged: {log}"
    );
    assert!(log.contains("ada@example.com"), "recipient logged: {log}");
    assert!(
        log.contains("Your Example Auth sign-in code"),
        "subject logged: {log}"
    );
    assert!(!log.contains("918273"), "the code is not logged: {log}");
    assert!(!log.contains("token="), "the link is not logged: {log}");
    assert!(!log.contains("Hello Ada"), "no body text is logged: {log}");
}

#[tokio::test]
async fn file_mailer_checks_its_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let err = FileMailer::new(tmp.path().to_owned(), "nobody".to_owned()).unwrap_err();
    assert!(err.contains("mail.from"), "{err}");

    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    assert!(FileMailer::new(file, "dev@auth.test".to_owned()).is_err());

    let mailer = FileMailer::new(tmp.path().to_owned(), "dev@auth.test".to_owned()).unwrap();
    let err = mailer.send(&message("no address")).await.unwrap_err();
    assert!(matches!(err, DeliveryError::Permanent(_)), "{err:?}");
}

// ---------------------------------------------------------------- TemplateRenderer

#[test]
fn every_shipped_template_renders_every_mail() {
    let renderer = shipped();
    for template in MailTemplate::ALL {
        let mail = renderer.render(&intent(template, &[])).unwrap();
        let name = template.name();
        assert_eq!(mail.to, "ada@example.com");
        assert!(!mail.subject.is_empty(), "{name}");
        for (part, body) in [
            ("subject", &mail.subject),
            ("text", &mail.text),
            ("html", &mail.html),
        ] {
            assert!(
                !body.contains("{{") && !body.contains("}}"),
                "{name} {part}: {body}"
            );
        }
        assert!(mail.text.contains("Hello Ada,"), "{name}");
        assert!(mail.text.contains("Example Auth"), "{name}");
        assert!(mail.html.starts_with("<!DOCTYPE html>"), "{name}");
        assert!(mail.html.contains("https://app.example.com"), "{name}");
        assert!(
            !mail.html.contains("<img") && !mail.html.contains("<script"),
            "{name}"
        );
        match template {
            MailTemplate::VerifyEmail | MailTemplate::PasswordReset | MailTemplate::MagicLink => {
                assert!(mail.text.contains(LINK), "{name}");
                assert!(mail.html.contains(&LINK.replace('&', "&amp;")), "{name}");
                assert!(mail.text.contains("30 minutes"), "{name}");
            }
            MailTemplate::EmailOtp => {
                assert!(mail.text.contains("042917") && mail.html.contains("042917"));
                assert!(!mail.subject.contains("042917"), "no code in the subject");
            }
            _ => assert!(!mail.text.contains(LINK), "{name}"),
        }
    }
}

#[test]
fn an_empty_name_falls_back_and_app_name_defaults_to_the_configured_one() {
    let renderer = TemplateRenderer::new(None, "Configured".to_owned()).unwrap();
    let mut intent = intent(MailTemplate::PasswordChanged, &[("name", "")]);
    intent.values.remove("app_name");
    let mail = renderer.render(&intent).unwrap();
    assert!(mail.text.starts_with("Hello there,"), "{}", mail.text);
    assert!(mail.html.contains("Hello there,"));
    assert_eq!(mail.subject, "Your Configured password was changed");
}

#[test]
fn html_values_are_escaped_and_text_values_are_not() {
    let name = "<script>alert('x')</script> & \"co\"";
    let mail = shipped()
        .render(&intent(MailTemplate::MagicLink, &[("name", name)]))
        .unwrap();
    assert!(!mail.html.contains("<script>"), "{}", mail.html);
    assert!(
        mail.html.contains(
            "Hello &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;co&quot;,"
        )
    );
    assert!(mail.text.contains(&format!("Hello {name},")));
}

#[test]
fn values_in_subjects_cannot_add_header_lines() {
    let renderer = shipped();
    for template in MailTemplate::ALL {
        let mail = renderer
            .render(&intent(
                template,
                &[
                    ("app_name", "Evil\r\nBcc: victim@example.com\n"),
                    ("name", "a\rb\nc"),
                ],
            ))
            .unwrap();
        assert!(!mail.subject.contains(['\r', '\n']), "{:?}", mail.subject);
        assert!(
            mail.subject.contains("Evil  Bcc: victim@example.com"),
            "{:?}",
            mail.subject
        );
    }
}

#[test]
fn a_missing_value_at_render_time_names_the_key() {
    let mut intent = intent(MailTemplate::VerifyEmail, &[]);
    intent.values.remove("link");
    let err = shipped().render(&intent).unwrap_err();
    assert!(err.message().contains("\"link\""), "{err}");
    assert!(err.message().contains("verify_email"), "{err}");
}

#[test]
fn an_override_directory_replaces_one_file_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("verify_email.subject.txt"),
        "Welcome to {{ app_name }}, {{name|friend}}!\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("README.md"), "not a template").unwrap();
    let renderer = TemplateRenderer::new(Some(dir.path()), "Example Auth".to_owned()).unwrap();

    let verify = renderer
        .render(&intent(MailTemplate::VerifyEmail, &[]))
        .unwrap();
    assert_eq!(verify.subject, "Welcome to Example Auth, Ada!");
    let shipped_verify = shipped()
        .render(&intent(MailTemplate::VerifyEmail, &[]))
        .unwrap();
    assert_eq!(verify.text, shipped_verify.text);
    assert_eq!(verify.html, shipped_verify.html);

    let reset = renderer
        .render(&intent(MailTemplate::PasswordReset, &[]))
        .unwrap();
    let shipped_reset = shipped()
        .render(&intent(MailTemplate::PasswordReset, &[]))
        .unwrap();
    assert_eq!(reset, shipped_reset);
}

#[test]
fn a_bad_override_is_refused_at_construction_naming_the_file() {
    let cases = [
        (
            "password_reset.html",
            "<a href=\"{{link}}\">{{token}}</a>",
            "unknown placeholder",
        ),
        ("password_changed.txt", "Open {{link}}", "never given"),
        ("email_otp.txt", "Code: {{code", "never closed"),
        ("magic_link.txt", "{{ not-a-key }}", "malformed"),
        ("signup_attempted.subject.txt", "   \n", "empty"),
        ("verify_email.subject.txt", "Line one\nLine two", "one line"),
    ];
    for (file, content, why) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(file), content).unwrap();
        let err = TemplateRenderer::new(Some(dir.path()), "Example".to_owned()).unwrap_err();
        assert!(
            err.contains(&dir.path().join(file).display().to_string()),
            "{err}"
        );
        assert!(err.contains(why), "{file}: {err}");
    }

    let missing = tempfile::tempdir().unwrap().path().join("nope");
    let err = TemplateRenderer::new(Some(&missing), "Example".to_owned()).unwrap_err();
    assert!(err.contains("nope"), "{err}");
}

// ---------------------------------------------------------------- SmtpSink

#[tokio::test]
async fn wait_for_gives_up_after_its_timeout() {
    let sink = SmtpSink::start();
    let started = Instant::now();
    let none = sink.wait_for(|_| true, Duration::from_millis(200)).await;
    assert!(none.is_none());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    sink.stop();
    sink.stop();
}
