use std::collections::BTreeSet;

use super::*;

/// A value of `setting`'s kind that differs from d2l's.
fn other_value(setting: Setting) -> Value {
    match setting.declaration().kind {
        Kind::Count => Value::Count(if setting == Setting::Epochs { 2 } else { 3 }),
        Kind::Seed => Value::Seed(3),
        Kind::Number => Value::Number(0.3),
        Kind::Switch => Value::On,
        Kind::Path => Value::Path("photos".into()),
        Kind::Text => Value::Text("best".into()),
        Kind::Choice(values) => Value::Text(values[1].0.into()),
        Kind::Choices(values) => Value::Names(vec![values[0].0.into()]),
        Kind::Numbers => Value::Numbers(vec![0.3, 0.5]),
    }
}

#[test]
fn nothing_given_changes_nothing() {
    let base = TrainingConfig::d2l(96).with_lr(0.1);
    assert_eq!(Overrides::default().applied_to(base.clone()), base);
    assert!(Overrides::default().changes(&base).is_empty());
}

#[test]
fn given_values_replace_the_base_and_are_the_changes() {
    let base = TrainingConfig::d2l(224).with_limit_train(Some(50));
    let given = Overrides::default()
        .with(Setting::ImageSize, Value::Count(96))
        .with(Setting::Lr, Value::Number(0.05))
        .with(Setting::Momentum, Value::Number(0.9))
        .with(Setting::LimitTrain, Value::Count(50));
    let c = given.applied_to(base.clone());
    assert_eq!((c.model.image_size, c.lr), (96, 0.05));
    assert_eq!((c.optimizer.momentum, c.limit_train), (0.9, Some(50)));
    assert_eq!(
        given.changes(&base),
        [Setting::Lr, Setting::ImageSize, Setting::Momentum],
        "an equal value is no change; in --help order"
    );
}

#[test]
fn every_setting_is_reached_by_a_value_of_its_kind_and_named_once() {
    let base = TrainingConfig::d2l(224);
    for &setting in Setting::ALL {
        let given = Overrides::default().with(setting, other_value(setting));
        assert_eq!(given.changes(&base), [setting], "{setting:?}");
    }
    let unique = |name: fn(&Declaration) -> &str| {
        let names: BTreeSet<&str> = Setting::ALL.iter().map(|s| name(s.declaration())).collect();
        names.len() == Setting::ALL.len()
    };
    assert!(unique(|d| d.field), "one field per setting");
    assert!(unique(|d| d.flag), "one flag per setting");
    assert!(Setting::ALL.iter().all(|s| s.declaration().setting == *s));
}

#[test]
fn d2l_breaks_no_rule_and_each_message_names_what_it_uses() {
    let d2l = TrainingConfig::d2l(224);
    for &setting in Setting::ALL {
        assert!(setting.broken_check(&d2l).is_none(), "{setting:?}");
        for check in setting.declaration().checks {
            assert!(
                check.message.contains("{flag}"),
                "{setting:?}: {}",
                check.message
            );
            let names_other = check.message.contains("{needs}");
            assert_eq!(
                names_other,
                check.needs.is_some(),
                "{setting:?}: {}",
                check.message
            );
        }
    }
}

#[test]
fn messages_name_settings_as_the_caller_does() {
    let config = TrainingConfig::d2l(224).with_lr(0.0);
    let check = Setting::Lr.broken_check(&config).unwrap();
    let flag = |s: Setting| s.declaration().flag.to_string();
    assert_eq!(
        fill(check, Setting::Lr, "0", &flag),
        "--lr 0 is not a usable learning rate: give a finite number above 0 (d2l uses 0.01)"
    );
    let nesterov = Overrides::default().with(Setting::Nesterov, Value::On);
    let config = nesterov.applied_to(TrainingConfig::d2l(224));
    let check = Setting::Nesterov.broken_check(&config).unwrap();
    assert_eq!(
        fill(check, Setting::Nesterov, "true", &field_names),
        "optimizer.nesterov true needs a optimizer.momentum above 0, e.g. optimizer.momentum 0.9"
    );
}

#[test]
fn the_report_phrases_what_is_not_d2ls_by_heading() {
    let given = Overrides::default()
        .with(Setting::Momentum, Value::Number(0.9))
        .with(Setting::HeadLrMult, Value::Number(10.0))
        .with(Setting::FreezeFeatures, Value::On)
        .with(Setting::Lr, Value::Number(0.1));
    let lines = not_d2l(&given.applied_to(TrainingConfig::d2l(96)));
    assert_eq!(
        lines,
        [
            ("Optimizer", vec!["momentum 0.9".to_string()]),
            (
                "Fine-tuning",
                vec![
                    "output layer lr x10".to_string(),
                    "the five convolutions frozen (not trained)".to_string()
                ]
            ),
        ]
    );
    assert!(not_d2l(&TrainingConfig::d2l(224)).is_empty());
}
