//! `/pullstack <command>` lines in PR comments.
//!
//! Only lines that start with `/pullstack` count. Fenced code blocks, indented
//! code and `>` quotes are skipped, so quoting an earlier command or pasting a
//! log never runs anything. Only the first command line of a comment counts.

/// A command a user can give in a PR comment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Command {
    /// Redeploy the environment at the PR's head commit.
    Redeploy,
    /// Tear the environment down (a later push or `redeploy` brings it back).
    Destroy,
    /// Approve a fork PR's head commit for deployment.
    Deploy,
    /// Scale an idle environment back up (or recreate one deleted as idle).
    Wake,
    /// Run the smoke checks again at the environment's ready commit.
    Check,
    /// List the commands.
    Help,
    /// Finish the production release in flight now.
    Promote,
    /// Move production traffic back to the previous release.
    Rollback,
}

/// The permission a command needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Read,
    Triage,
    Write,
    Maintain,
    Admin,
}

impl Role {
    /// GitHub's name for the permission.
    pub fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Triage => "triage",
            Role::Write => "write",
            Role::Maintain => "maintain",
            Role::Admin => "admin",
        }
    }
}

impl Command {
    pub const ALL: [Command; 8] = [
        Command::Redeploy,
        Command::Destroy,
        Command::Deploy,
        Command::Wake,
        Command::Check,
        Command::Help,
        Command::Promote,
        Command::Rollback,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Command::Redeploy => "redeploy",
            Command::Destroy => "destroy",
            Command::Deploy => "deploy",
            Command::Wake => "wake",
            Command::Check => "check",
            Command::Help => "help",
            Command::Promote => "promote",
            Command::Rollback => "rollback",
        }
    }

    pub fn summary(self) -> &'static str {
        match self {
            Command::Redeploy => "redeploy this PR's environment at its head commit",
            Command::Destroy => "tear the environment down; a push or `redeploy` brings it back",
            Command::Deploy => {
                "approve a fork PR's head commit for deployment; name the commit to be exact \
                 (`/pullstack deploy <sha>`)"
            }
            Command::Wake => "bring back an environment scaled down or deleted for being idle",
            Command::Check => "run the smoke checks again against the ready environment",
            Command::Help => "list these commands",
            Command::Promote => "finish the production release in flight now (maintainers)",
            Command::Rollback => {
                "move production traffic back to the previous release (maintainers)"
            }
        }
    }

    /// The least role allowed to run the command.
    pub fn required_role(self) -> Role {
        match self {
            Command::Help => Role::Read,
            // Waking costs little and sleeps again on its own; QA often has triage only.
            Command::Wake => Role::Triage,
            Command::Redeploy | Command::Destroy | Command::Deploy | Command::Check => Role::Write,
            Command::Promote | Command::Rollback => Role::Maintain,
        }
    }

    /// Whether the command acts on production rather than the PR's preview.
    pub fn is_production(self) -> bool {
        matches!(self, Command::Promote | Command::Rollback)
    }

    fn from_name(name: &str) -> Option<Command> {
        Command::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// The first `/pullstack` line of a comment, understood or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A command; `sha` is the commit a `deploy` names, lowercased.
    Command {
        command: Command,
        sha: Option<String>,
    },
    /// Not a command pullstack knows, or a command with an argument it cannot
    /// take. `reply` says so in plain words, echoing nothing the commenter
    /// could use for markup or mentions.
    Unclear { reply: String },
}

/// The prefix every command line starts with.
pub const PREFIX: &str = "/pullstack";

/// The longest commenter's word echoed back, in characters.
const ECHO_MAX: usize = 40;

/// Finds the command in a comment body: the first `/pullstack` line only.
///
/// One comment acts once. A comment of thousands of command lines would
/// otherwise make pullstack write thousands of times.
pub fn parse(body: &str) -> Option<Parsed> {
    let mut in_fence = false;
    for line in body.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        let indented_code = line.starts_with("    ") || line.starts_with('\t');
        if in_fence || indented_code || trimmed.starts_with('>') {
            continue;
        }
        let Some(rest) = trimmed.strip_prefix(PREFIX) else {
            continue;
        };
        // `/pullstackfoo` is not ours.
        if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
            continue;
        }
        let mut words = rest.split_whitespace();
        let word = words.next().unwrap_or("help").to_ascii_lowercase();
        return Some(understand(&word, words.next()));
    }
    None
}

fn understand(word: &str, argument: Option<&str>) -> Parsed {
    let Some(command) = Command::from_name(word) else {
        let hint = closest(word)
            .map(|c| format!(" Did you mean `/pullstack {}`?", c.name()))
            .unwrap_or_default();
        return Parsed::Unclear {
            reply: format!("Unknown command `{}`.{hint}", echo(word)),
        };
    };
    if command != Command::Deploy {
        return Parsed::Command { command, sha: None };
    }
    match argument {
        None => Parsed::Command { command, sha: None },
        Some(sha) if is_sha(sha) => Parsed::Command {
            command,
            sha: Some(sha.to_ascii_lowercase()),
        },
        Some(other) => Parsed::Unclear {
            reply: format!(
                "`/pullstack deploy` takes a commit SHA (7 to 40 hexadecimal characters), and \
                 `{}` is not one.",
                echo(other)
            ),
        },
    }
}

/// Whether `text` can be a (possibly abbreviated) commit SHA.
fn is_sha(text: &str) -> bool {
    (7..=40).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A commenter's word, safe inside a code span: letters, digits, `.`, `_`
/// and `-` are kept, anything else (a backtick closing the span, an `@`
/// mention, markup) becomes `?`, and it is cut at [`ECHO_MAX`] characters.
pub fn echo(word: &str) -> String {
    let mut out: String = word
        .chars()
        .take(ECHO_MAX)
        .map(|c| match c {
            c if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') => c,
            _ => '?',
        })
        .collect();
    if word.chars().nth(ECHO_MAX).is_some() {
        out.push('…');
    }
    out
}

fn closest(word: &str) -> Option<Command> {
    Command::ALL
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c.name()), c))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(command: Command) -> Option<Parsed> {
        Some(Parsed::Command { command, sha: None })
    }

    #[test]
    fn finds_commands() {
        assert_eq!(parse("/pullstack redeploy"), command(Command::Redeploy));
        assert_eq!(
            parse("please\n  /pullstack   Destroy now"),
            command(Command::Destroy)
        );
        assert_eq!(parse("/pullstack"), command(Command::Help));
    }

    #[test]
    fn ignores_code_and_quotes() {
        let body = "```\n/pullstack destroy\n```\n> /pullstack destroy\n    /pullstack destroy\nsee `/pullstack destroy`";
        assert_eq!(parse(body), None);
    }

    #[test]
    fn ignores_other_prefixes() {
        assert_eq!(parse("/pullstacks redeploy\n/pullstack-bot help"), None);
    }

    // Attack: one comment of thousands of `/pullstack` lines made the bot
    // answer each line.
    #[test]
    fn only_the_first_command_of_a_comment_counts() {
        let flood = "/pullstack rollback\n".repeat(3_000);
        assert_eq!(
            parse(&format!("/pullstack wake\n{flood}")),
            command(Command::Wake)
        );
    }

    #[test]
    fn deploy_may_name_its_commit() {
        assert_eq!(
            parse("/pullstack deploy ABCDEF1"),
            Some(Parsed::Command {
                command: Command::Deploy,
                sha: Some("abcdef1".into())
            })
        );
        let Some(Parsed::Unclear { reply }) = parse("/pullstack deploy main") else {
            panic!("a branch name is not a commit");
        };
        assert!(reply.contains("`main` is not one"), "{reply}");
        assert!(matches!(
            parse("/pullstack deploy abc"),
            Some(Parsed::Unclear { .. })
        ));
    }

    #[test]
    fn near_miss_suggests() {
        let Some(Parsed::Unclear { reply }) = parse("/pullstack redeply") else {
            panic!("not a command");
        };
        assert_eq!(
            reply,
            "Unknown command `redeply`. Did you mean `/pullstack redeploy`?"
        );
        let Some(Parsed::Unclear { reply }) = parse("/pullstack launch-missiles") else {
            panic!("not a command");
        };
        assert_eq!(reply, "Unknown command `launch-missiles`.");
    }

    // Attack: `/pullstack x`@acme/security-team` closed the code span and
    // made the bot post a live team mention.
    #[test]
    fn echoed_words_carry_no_markup_or_mentions() {
        for body in [
            "/pullstack x`@acme/security-team`",
            "/pullstack deploy `@acme/security-team`",
            "/pullstack <img/src=x>@everyone",
        ] {
            let Some(Parsed::Unclear { reply }) = parse(body) else {
                panic!("{body} is not a command");
            };
            assert!(!reply.contains('@'), "{reply}");
            assert_eq!(reply.matches('`').count() % 2, 0, "{reply}");
            assert!(!reply.contains('<'), "{reply}");
        }
    }

    #[test]
    fn long_unknown_word_is_truncated() {
        let body = format!("/pullstack {}", "x".repeat(10_000));
        let Some(Parsed::Unclear { reply }) = parse(&body) else {
            panic!("not a command");
        };
        assert!(reply.len() < 100, "{reply}");
        assert!(reply.contains(&format!("`{}…`", "x".repeat(ECHO_MAX))));
    }

    #[test]
    fn roles_are_ordered() {
        assert!(
            Role::Admin > Role::Maintain
                && Role::Maintain > Role::Write
                && Role::Write > Role::Read
        );
    }
}
