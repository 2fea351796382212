//! One shard's members grouped into samples: `<key>.jpg` (or `.jpeg`) with `<key>.json`, in
//! either order, adjacent in the archive as webdataset requires (SA-1B's tars are written that
//! way). A member without its partner, or a fault of the archive, becomes a damaged unit, which
//! the stream reports and counts; other members (directories, other extensions) are counted as
//! ignored.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::tar_headers::{MemberRef, TarEntry, TarHeaders, shard_error};
use crate::error::DataError;

/// One element of a shard's sample stream.
#[derive(Debug)]
pub(crate) enum Unit {
    /// A complete sample.
    Pair {
        /// The shard holding both members.
        shard: Arc<PathBuf>,
        /// The image member.
        image: MemberRef,
        /// The annotation member.
        json: MemberRef,
    },
    /// A sample that cannot be read, or a fault that ends its shard early.
    Damaged(DataError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Image,
    Json,
}

/// `dir/sa_1.jpg` → (`dir/sa_1`, image); `None` for other extensions.
fn role(name: &str) -> Option<(&str, Role)> {
    let base_start = name.rfind('/').map_or(0, |i| i + 1);
    let dot = base_start + name[base_start..].rfind('.')?;
    let role = match name[dot + 1..].to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" => Role::Image,
        "json" => Role::Json,
        _ => return None,
    };
    Some((&name[..dot], role))
}

struct Group {
    key: String,
    image: Option<MemberRef>,
    json: Option<MemberRef>,
}

/// The samples of one shard, in archive order.
pub(crate) struct ShardSamples {
    shard: Arc<PathBuf>,
    headers: TarHeaders,
    group: Option<Group>,
    queued: VecDeque<Unit>,
    ignored: u64,
    done: bool,
}

impl ShardSamples {
    /// Opens a shard; a shard that cannot be opened is one damaged unit.
    pub fn open(shard: &Path) -> std::result::Result<Self, Unit> {
        let headers = TarHeaders::open(shard).map_err(Unit::Damaged)?;
        Ok(Self {
            shard: Arc::new(shard.to_path_buf()),
            headers,
            group: None,
            queued: VecDeque::new(),
            ignored: 0,
            done: false,
        })
    }

    /// Members skipped so far as neither image nor JSON (directories included).
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    fn close(&self, g: Group) -> Unit {
        match (g.image, g.json) {
            (Some(image), Some(json)) => Unit::Pair {
                shard: self.shard.clone(),
                image,
                json,
            },
            (Some(lone), None) | (None, Some(lone)) => {
                let (key, role) = role(&lone.name).unwrap_or((&g.key, Role::Image));
                let partner = match role {
                    Role::Image => format!("{key}.json"),
                    Role::Json => format!("{key}.jpg"),
                };
                Unit::Damaged(shard_error(
                    &self.shard,
                    &lone.name,
                    format!("no {partner} beside it (a sample's members must be adjacent)"),
                ))
            }
            (None, None) => Unit::Damaged(shard_error(&self.shard, &g.key, "empty sample".into())),
        }
    }

    fn add(&mut self, member: MemberRef) {
        let Some((key, role)) = role(&member.name) else {
            self.ignored += 1;
            return;
        };
        let key = key.to_string();
        // A new key, or a second image (JSON) for the same key, closes the current group.
        let fits = self.group.as_ref().is_some_and(|g| {
            g.key == key
                && match role {
                    Role::Image => g.image.is_none(),
                    Role::Json => g.json.is_none(),
                }
        });
        if !fits {
            if let Some(old) = self.group.take() {
                let unit = self.close(old);
                self.queued.push_back(unit);
            }
            self.group = Some(Group {
                key,
                image: None,
                json: None,
            });
        }
        let Some(g) = self.group.as_mut() else { return };
        match role {
            Role::Image => g.image = Some(member),
            Role::Json => g.json = Some(member),
        }
        if g.image.is_some()
            && g.json.is_some()
            && let Some(done) = self.group.take()
        {
            let unit = self.close(done);
            self.queued.push_back(unit);
        }
    }

    /// A fault ends the shard. A member waiting for its partner then has lost it to the fault:
    /// the two are one damaged sample, counted once.
    fn fault(&mut self, error: DataError) {
        self.done = true;
        let error = match (self.group.take(), error) {
            (
                Some(g),
                DataError::TarMember {
                    shard,
                    member,
                    reason,
                },
            ) => {
                let pending = g.image.or(g.json).map(|m| m.name).unwrap_or(g.key);
                DataError::TarMember {
                    shard,
                    member,
                    reason: format!("{reason} ({pending}, waiting for its partner, is dropped)"),
                }
            }
            (g, error) => {
                if let Some(g) = g {
                    let unit = self.close(g);
                    self.queued.push_back(unit);
                }
                error
            }
        };
        self.queued.push_back(Unit::Damaged(error));
    }
}

impl Iterator for ShardSamples {
    type Item = Unit;

    fn next(&mut self) -> Option<Unit> {
        loop {
            if let Some(u) = self.queued.pop_front() {
                return Some(u);
            }
            if self.done {
                return None;
            }
            match self.headers.next() {
                None => {
                    self.done = true;
                    if let Some(g) = self.group.take() {
                        return Some(self.close(g));
                    }
                }
                Some(Ok(TarEntry::Other(_))) => self.ignored += 1,
                Some(Ok(TarEntry::File(m))) => self.add(m),
                Some(Err(e)) => self.fault(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_by_extension_of_the_base_name() {
        assert_eq!(role("sa_1.jpg"), Some(("sa_1", Role::Image)));
        assert_eq!(role("d.x/sa_1.JPEG"), Some(("d.x/sa_1", Role::Image)));
        assert_eq!(role("sa_1.json"), Some(("sa_1", Role::Json)));
        assert_eq!(role("d.x/README"), None);
        assert_eq!(role("sa_1.txt"), None);
    }
}
