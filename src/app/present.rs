//! Terminal colours. Output goes through `anstream`, which drops the escape
//! codes when stdout is not a terminal or `NO_COLOR` is set.

use anstyle::{AnsiColor, Effects, Style};

use crate::core::risk::RiskLevel;

pub fn risk_style(level: RiskLevel) -> Style {
    match level {
        RiskLevel::Low => Style::new().fg_color(Some(AnsiColor::Green.into())),
        RiskLevel::Medium => Style::new().fg_color(Some(AnsiColor::Yellow.into())),
        RiskLevel::High => Style::new().fg_color(Some(AnsiColor::Red.into())),
        RiskLevel::Critical => Style::new()
            .fg_color(Some(AnsiColor::Magenta.into()))
            .effects(Effects::BOLD),
    }
}

/// The level, coloured and padded to a fixed width; CRITICAL gets a ⛔.
pub fn badge(level: RiskLevel) -> String {
    let text = match level {
        RiskLevel::Critical => "⛔ CRITICAL".to_owned(),
        other => format!("{other:<8}"),
    };
    paint(risk_style(level), &text)
}

pub fn paint(style: Style, text: &str) -> String {
    format!("{}{text}{}", style.render(), style.render_reset())
}

pub fn dim(text: &str) -> String {
    paint(Style::new().effects(Effects::DIMMED), text)
}

pub fn bold(text: &str) -> String {
    paint(Style::new().effects(Effects::BOLD), text)
}

/// The frames of a terminal spinner.
pub const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// An age in one unit: `42s`, `3m`, `5h`, `2d`.
pub fn age(since: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> String {
    let secs = (now - since).num_seconds().max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}
