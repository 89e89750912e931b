//! `uvs director`'s command line, built from the settings table: each
//! setting becomes a flag with its help, its default shown, its values
//! and environment variable, and what the command line gives is checked
//! by the setting's own check.

use super::settings::{Rel, SETTINGS, SettingError, Settings, Ty};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

/// The director's settings as the command line gives them, unchecked:
/// `settings` checks them (a refusal is the director's own error, exit
/// status 1, as for the file's values).
pub struct DirectorArgs {
    given: Vec<(&'static super::settings::Setting, Vec<String>)>,
}

impl DirectorArgs {
    /// The command line's settings, checked (`given` holds only what it
    /// gave; the file and the defaults come later).
    pub fn settings(&self) -> Result<Settings, SettingError> {
        let mut s = Settings::default();
        for (st, values) in &self.given {
            let name = format!("--{}", st.flag);
            for v in values {
                s.set(st, &name, v)?;
            }
        }
        Ok(s)
    }
}

fn arg(s: &'static super::settings::Setting) -> Arg {
    let mut help = s.help.to_string();
    if let Some(d) = s.default {
        help += &format!(" [default: {d}]");
    }
    if let Some(k) = s.key {
        help += &format!(" (config file: {k})");
    }
    let mut a = Arg::new(s.flag).long(s.flag).help(help).hide(s.hide);
    if let Some(c) = s.short {
        a = a.short(c);
    }
    a = match (s.ty, s.multi) {
        (Ty::Switch, _) => a.action(ArgAction::SetTrue),
        (_, true) => a.action(ArgAction::Append).value_name(s.value_name),
        (_, false) => a.action(ArgAction::Set).value_name(s.value_name),
    };
    if matches!(s.ty, Ty::Int | Ty::Num | Ty::Text) {
        a = a.allow_hyphen_values(true);
    }
    if !s.choices.is_empty() {
        a = a.value_parser(clap::builder::PossibleValuesParser::new(s.choices));
    }
    if let Some(e) = s.env {
        a = a.env(e);
    }
    match s.rel {
        Rel::None => a,
        Rel::RequiredUnless(other) => a.required_unless_present(other),
        Rel::Requires(other) => a.requires(other),
    }
}

impl Args for DirectorArgs {
    fn augment_args(cmd: Command) -> Command {
        cmd.args(SETTINGS.iter().map(arg))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for DirectorArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut given = Vec::new();
        for st in SETTINGS {
            let on_line = matches!(
                m.value_source(st.flag),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            );
            if !on_line {
                continue;
            }
            let values: Vec<String> = match st.ty {
                Ty::Switch => vec![m.get_flag(st.flag).to_string()],
                _ => m
                    .get_many::<String>(st.flag)
                    .map(|v| v.cloned().collect())
                    .unwrap_or_default(),
            };
            given.push((st, values));
        }
        Ok(DirectorArgs { given })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}
