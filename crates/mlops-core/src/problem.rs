//! One error type for every flow: what went wrong, how to fix it, and whose fault it is. The
//! binary maps the [`Fault`] to the documented exit code in one place, so "a user error is never
//! reported as a bug" holds by construction.

use std::fmt;

/// Whose problem it is, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The check said no: a threshold missed, a gate refused, a drift found (exit 1).
    Refused,
    /// The user's input is wrong: a flag, a file, an address, a reference (exit 2).
    Input,
    /// A remote service, the machine or a tool failed (exit 3).
    Broken,
    /// Interrupted by a signal, after cleaning up (exit 130).
    Cancelled,
}

impl Fault {
    /// The documented exit code of a process that stops for this fault (the README's table;
    /// the binary's `Exit` has the same numbers, which its unit test checks).
    pub fn exit_code(self) -> u8 {
        match self {
            Fault::Refused => 1,
            Fault::Input => 2,
            Fault::Broken => 3,
            Fault::Cancelled => 130,
        }
    }

    /// The fault an `mlops` process's exit code says (none for 0); an unknown code is broken.
    pub fn from_exit_code(code: i32) -> Option<Fault> {
        match code {
            0 => None,
            1 => Some(Fault::Refused),
            2 => Some(Fault::Input),
            130 => Some(Fault::Cancelled),
            _ => Some(Fault::Broken),
        }
    }
}

/// What went wrong (`message`), how to fix it (`hint`, may be empty) and [`Fault`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub message: String,
    pub hint: String,
    pub fault: Fault,
}

impl Problem {
    pub fn new(fault: Fault, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Problem {
            message: message.into(),
            hint: hint.into(),
            fault,
        }
    }

    /// The user's input is wrong (exit 2).
    pub fn input(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(Fault::Input, message, hint)
    }

    /// Something outside the user's input failed (exit 3).
    pub fn broken(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(Fault::Broken, message, hint)
    }

    /// Interrupted, after cleaning up (exit 130).
    pub fn cancelled(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(Fault::Cancelled, message, hint)
    }

    /// The check said no (exit 1).
    pub fn refused(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(Fault::Refused, message, hint)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if !self.hint.is_empty() {
            write!(f, " (hint: {})", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

/// An AWS call's failure: a wrong address is the user's to fix, anything else is broken.
impl From<mlops_aws::AwsError> for Problem {
    fn from(e: mlops_aws::AwsError) -> Self {
        let fault = if e.kind.is_user() {
            Fault::Input
        } else {
            Fault::Broken
        };
        Problem::new(fault, e.message, e.hint)
    }
}

/// The registry's failure: a wrong registry or reference is the user's, I/O is broken.
impl From<mlops_registry::RegistryError> for Problem {
    fn from(e: mlops_registry::RegistryError) -> Self {
        let fault = if e.user { Fault::Input } else { Fault::Broken };
        Problem::new(fault, e.message, e.hint)
    }
}

/// Training's failure: bad data is the user's, a diverged run is a "no", the rest is broken.
impl From<mlops_train::worker::WorkerError> for Problem {
    fn from(e: mlops_train::worker::WorkerError) -> Self {
        use mlops_train::worker::WorkerError as W;
        let fault = match &e {
            W::Input { .. } => Fault::Input,
            W::Diverged { .. } => Fault::Refused,
            W::Runtime { .. } => Fault::Broken,
        };
        Problem::new(fault, e.message(), e.hint())
    }
}

/// `mlops init`'s failure: a bad template or answer is the user's, a failed hook is a "no".
impl From<mlops_init::InitError> for Problem {
    fn from(e: mlops_init::InitError) -> Self {
        let fault = match e.kind {
            mlops_init::Kind::Usage => Fault::Input,
            mlops_init::Kind::Hook => Fault::Refused,
            mlops_init::Kind::Io => Fault::Broken,
        };
        Problem::new(fault, e.message, e.hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_go_both_ways() {
        for f in [
            Fault::Refused,
            Fault::Input,
            Fault::Broken,
            Fault::Cancelled,
        ] {
            assert_eq!(Fault::from_exit_code(i32::from(f.exit_code())), Some(f));
        }
        assert_eq!(Fault::from_exit_code(0), None);
        assert_eq!(
            Fault::from_exit_code(101),
            Some(Fault::Broken),
            "a panic is broken"
        );
    }

    #[test]
    fn each_source_of_failure_keeps_whose_fault_it_is() {
        let missing = mlops_aws::AwsError {
            message: "no such bucket".into(),
            hint: "check the address".into(),
            kind: mlops_aws::Kind::Missing,
        };
        assert_eq!(Problem::from(missing).fault, Fault::Input);
        let registry = mlops_registry::RegistryError {
            message: "disk full".into(),
            hint: String::new(),
            user: false,
        };
        let p = Problem::from(registry);
        assert_eq!(
            (p.fault, p.to_string().as_str()),
            (Fault::Broken, "disk full")
        );
        let diverged = mlops_train::worker::WorkerError::Diverged {
            message: "loss is NaN".into(),
            hint: "lower the learning rate".into(),
        };
        let p = Problem::from(diverged);
        assert_eq!(p.fault, Fault::Refused);
        assert_eq!(p.to_string(), "loss is NaN (hint: lower the learning rate)");
    }
}
