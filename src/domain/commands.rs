//! `/pullstack <command>` lines in PR comments.
//!
//! Only lines that start with `/pullstack` count. Fenced code blocks, indented
//! code and `>` quotes are skipped, so quoting an earlier command or pasting a
//! log never runs anything.

/// A command a user can give in a PR comment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// Redeploy the environment at the PR's head commit.
    Redeploy,
    /// Tear the environment down (a later push or `redeploy` brings it back).
    Destroy,
    /// Approve a fork PR's current head commit for deployment.
    Deploy,
    /// Scale an idle environment back up (or recreate one deleted as idle).
    Wake,
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
    pub const ALL: [Command; 7] = [
        Command::Redeploy,
        Command::Destroy,
        Command::Deploy,
        Command::Wake,
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
            Command::Help => "help",
            Command::Promote => "promote",
            Command::Rollback => "rollback",
        }
    }

    pub fn summary(self) -> &'static str {
        match self {
            Command::Redeploy => "redeploy this PR's environment at its head commit",
            Command::Destroy => "tear the environment down; a push or `redeploy` brings it back",
            Command::Deploy => "approve a fork PR's current head commit for deployment",
            Command::Wake => "bring back an environment scaled down or deleted for being idle",
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
            Command::Redeploy | Command::Destroy | Command::Deploy => Role::Write,
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

/// One `/pullstack` line, understood or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    Command(Command),
    /// An unknown word, with the closest command if one is near.
    Unknown {
        word: String,
        suggestion: Option<Command>,
    },
}

/// The prefix every command line starts with.
pub const PREFIX: &str = "/pullstack";

/// Finds the commands in a comment body, in order, at most one per line.
pub fn parse(body: &str) -> Vec<Parsed> {
    let mut in_fence = false;
    let mut found = Vec::new();
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
        let word = rest
            .split_whitespace()
            .next()
            .unwrap_or("help")
            .to_ascii_lowercase();
        found.push(match Command::from_name(&word) {
            Some(command) => Parsed::Command(command),
            None => Parsed::Unknown {
                suggestion: closest(&word),
                word: word.chars().take(40).collect(),
            },
        });
    }
    found
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

    #[test]
    fn finds_commands() {
        assert_eq!(
            parse("/pullstack redeploy"),
            vec![Parsed::Command(Command::Redeploy)]
        );
        assert_eq!(
            parse("please\n  /pullstack   Destroy now"),
            vec![Parsed::Command(Command::Destroy)]
        );
        assert_eq!(parse("/pullstack"), vec![Parsed::Command(Command::Help)]);
    }

    #[test]
    fn ignores_code_and_quotes() {
        let body = "```\n/pullstack destroy\n```\n> /pullstack destroy\n    /pullstack destroy\nsee `/pullstack destroy`";
        assert_eq!(parse(body), vec![]);
    }

    #[test]
    fn ignores_other_prefixes() {
        assert_eq!(parse("/pullstacks redeploy\n/pullstack-bot help"), vec![]);
    }

    #[test]
    fn near_miss_suggests() {
        assert_eq!(
            parse("/pullstack redeply"),
            vec![Parsed::Unknown {
                word: "redeply".into(),
                suggestion: Some(Command::Redeploy)
            }]
        );
        assert_eq!(
            parse("/pullstack launch-missiles"),
            vec![Parsed::Unknown {
                word: "launch-missiles".into(),
                suggestion: None
            }]
        );
    }

    #[test]
    fn long_unknown_word_is_truncated() {
        let body = format!("/pullstack {}", "x".repeat(10_000));
        match parse(&body).as_slice() {
            [Parsed::Unknown { word, .. }] => assert_eq!(word.len(), 40),
            other => panic!("unexpected {other:?}"),
        }
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
