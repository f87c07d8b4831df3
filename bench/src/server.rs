//! The server under test: seeded with the `oxid` CLI, started pinned to one core, its memory read
//! from /proc.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

pub const USERNAME: &str = "bench";
pub const PASSWORD: &str = "bench-password-1234";
pub const CLIENT_ID: &str = "bench";
pub const CLIENT_SECRET: &str = "bench-client-secret-0123456789abcdef";
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/cb";

pub struct Server {
    child: Child,
    pub issuer: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn oxid(binary: &Path, database_url: &str, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    let mut child = Command::new(binary)
        .args(args)
        .env("OXID_DATABASE_URL", database_url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", binary.display()))?;
    if let Some(input) = stdin {
        child.stdin.take().expect("piped").write_all(input.as_bytes())?;
    }
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Seeding an already seeded database is fine.
    if !out.status.success() && !stderr.contains("already exists") {
        bail!("oxid {}: {stderr}", args.join(" "));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The resource server whose access tokens are JWTs.
pub const JWT_RESOURCE: &str = "https://api.bench.example";

/// Seeds a user and a trusted client, then starts `oxid serve` on a free port pinned to `cpu`.
pub async fn start(
    binary: &Path,
    database_url: Option<&str>,
    cpu: Option<usize>,
    concurrency: usize,
) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let database_url = match database_url {
        Some(url) => url.to_owned(),
        None => format!("sqlite://{}/oxid.db", dir.path().display()),
    };
    oxid(binary, &database_url, &["migrate"], None)?;
    oxid(
        binary,
        &database_url,
        &["user", "add", USERNAME, "--email", "bench@example.com", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    )?;
    oxid(
        binary,
        &database_url,
        &[
            "client",
            "add",
            "--name",
            "Bench",
            "--id",
            CLIENT_ID,
            "--secret-stdin",
            "--skip-consent",
            "--redirect-uri",
            REDIRECT_URI,
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--grant-type",
            "client_credentials",
            "--scope",
            "api",
        ],
        Some(&format!("{CLIENT_SECRET}\n")),
    )?;
    // A resource server taking RFC 9068 JWT access tokens (the jwt-access-token scenario).
    oxid(
        binary,
        &database_url,
        &["resource", "add", "--identifier", JWT_RESOURCE, "--scope", "api", "--token-format", "jwt"],
        None,
    )?;

    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let issuer = format!("http://{addr}");
    let mut command = match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(binary);
            c
        }
        None => Command::new(binary),
    };
    let child = command
        .arg("serve")
        .env("OXID_DATABASE_URL", &database_url)
        .env("OXID_ISSUER", &issuer)
        .env("OXID_LISTEN", addr.to_string())
        // Every simulated browser comes from this one address: its sign-ins would exceed the per-address
        // allowance of waiting requests that protects a real deployment.
        .env("OXID_PENDING_REQUESTS_PER_IP", u32::MAX.to_string())
        // The code_flow and refresh setups sign 64 browsers in to one account at once; the throttle lets
        // only a few password checks of one account run at a time (they count until they succeed).
        .env("OXID_LOGIN_MAX_FAILURES_PER_ACCOUNT", u32::MAX.to_string())
        .env("OXID_LOGIN_MAX_FAILURES_PER_IP", u32::MAX.to_string())
        // PostgreSQL: a connection per simulated client, as an operator would size the pool for this
        // concurrency (the default, 32, leaves room for several nodes on one database server).
        .env("OXID_DATABASE_POOL_SIZE", concurrency.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting oxid serve (is taskset installed? Debian: util-linux)")?;
    let server = Server { child, issuer, _dir: dir };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("oxid serve did not start")
}

/// The server's memory, in KiB.
pub struct Memory {
    /// Resident now (VmRSS), including the binary's and libraries' code pages the kernel maps in.
    pub rss: u64,
    /// Resident at the peak so far (VmHWM).
    pub peak_rss: u64,
    /// Resident anonymous memory now (RssAnon): what the process itself allocated (heap, stacks).
    pub anon: u64,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// The memory of the process `pid` (Linux /proc).
pub fn memory_kib(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(PathBuf::from(format!("/proc/{pid}/status")))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status.lines().find(|l| l.starts_with(name)).with_context(|| format!("no {name}"))?;
        Ok(line.split_whitespace().nth(1).context("malformed")?.parse()?)
    };
    Ok(Memory { rss: field("VmRSS:")?, peak_rss: field("VmHWM:")?, anon: field("RssAnon:")? })
}
