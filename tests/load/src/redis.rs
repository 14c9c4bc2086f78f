//! A private Redis for the scenarios that flush it or read its CPU time: a
//! `redis-server` without persistence on a free loopback port, and a
//! connection that sends it a few commands.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::error::LoadError;
use crate::scenario::ANSWER_TIMEOUT;

/// A Redis under test: where it listens and its process id, for its CPU time.
#[derive(Debug, Clone, Copy)]
pub struct RedisTarget {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process id.
    pub pid: u32,
}

impl RedisTarget {
    /// Its URL, for switchboard's `redis.url`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }
}

/// A `redis-server` of the load tool's own (`--save '' --appendonly no`, a
/// scratch directory), killed when dropped.
pub struct RedisProcess {
    child: Child,
    dir: PathBuf,
    /// Where it listens and its process id.
    pub target: RedisTarget,
}

impl RedisProcess {
    /// Starts `redis-server` on a free loopback port, with its log and
    /// working directory under `scratch`, pinned with `taskset -c cpus` when
    /// given, and waits until it answers `PING`.
    pub async fn start(scratch: &Path, cpus: Option<&str>) -> Result<Self, LoadError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = scratch.join(format!("redis-{port}"));
        std::fs::create_dir_all(&dir)?;
        let mut command = match cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).arg("redis-server");
                c
            }
            None => Command::new("redis-server"),
        };
        command
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(dir.join("redis.log"))?))
            .stderr(Stdio::null());
        let child = command.spawn().map_err(|e| failed(format!("redis-server: {e}")))?;
        let process = Self {
            target: RedisTarget {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                pid: child.id(),
            },
            child,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut con) = RedisConnection::connect(process.target.addr).await
                && con.command(&["PING"]).await.is_ok()
            {
                return Ok(process);
            }
            if Instant::now() > deadline {
                return Err(failed(format!(
                    "it did not answer PING within 10 s; see {}",
                    process.dir.join("redis.log").display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn failed(detail: String) -> LoadError {
    LoadError::ServerStart {
        server: "redis-server".to_owned(),
        detail,
    }
}

/// One reply of Redis, as far as the load tool needs: a status or an integer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`, `+PONG`.
    Status(String),
    /// `:n`.
    Integer(i64),
}

/// A connection to Redis that sends one command at a time and reads its
/// reply (a status, an error or an integer: the commands it sends answer
/// nothing else).
pub struct RedisConnection {
    stream: BufReader<TcpStream>,
}

impl RedisConnection {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Result<Self, LoadError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(stream),
        })
    }

    /// Sends `args` as one command and reads its reply; an error reply is an error.
    pub async fn command(&mut self, args: &[&str]) -> Result<Reply, LoadError> {
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        tokio::time::timeout(ANSWER_TIMEOUT, self.reply())
            .await
            .map_err(|_| LoadError::Timeout("a Redis reply"))?
    }

    /// Sends `args` and reads an integer reply.
    pub async fn integer(&mut self, args: &[&str]) -> Result<i64, LoadError> {
        match self.command(args).await? {
            Reply::Integer(n) => Ok(n),
            other => Err(unexpected(format!("{} answered {other:?}, not an integer", args[0]))),
        }
    }

    async fn reply(&mut self) -> Result<Reply, LoadError> {
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err(LoadError::Closed("a Redis connection"));
        }
        let line = line.trim_end();
        let (kind, rest) = line.split_at(line.len().min(1));
        match kind {
            "+" => Ok(Reply::Status(rest.to_owned())),
            ":" => rest
                .parse()
                .map(Reply::Integer)
                .map_err(|_| unexpected(format!("a malformed integer reply {line}"))),
            _ => Err(unexpected(format!("Redis answered {line}"))),
        }
    }
}

fn unexpected(detail: String) -> LoadError {
    LoadError::Unexpected {
        scenario: "a Redis command",
        detail,
    }
}
