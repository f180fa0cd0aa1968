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
