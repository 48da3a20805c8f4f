use super::*;

fn conv(k: usize, s: usize, cin: usize, cout: usize) -> Op {
    Op::Conv {
        kernel: k,
        stride: s,
        dilation: 1,
        padding: k / 2,
        groups: 1,
        cin,
        cout,
        bias: false,
    }
}

/// input → conv 3x3 3→8 → bn → relu → gap → linear 8→10
fn tiny() -> Net {
    let n = |name: &str, op: Op, inputs: Vec<usize>| Node {
        name: name.into(),
        op,
        inputs,
    };
    Net {
        name: "tiny".into(),
        input: ImageShape::CIFAR10,
        classes: 10,
        nodes: vec![
            n("input", Op::Input, vec![]),
            n("conv", conv(3, 1, 3, 8), vec![0]),
            n("bn", Op::BatchNorm { channels: 8 }, vec![1]),
            n("relu", Op::Relu { six: false }, vec![2]),
            n("gap", Op::GlobalAvgPool, vec![3]),
            n(
                "fc",
                Op::Linear {
                    cin: 8,
                    cout: 10,
                    bias: true,
                },
                vec![4],
            ),
        ],
    }
}

#[test]
fn tiny_net_shapes_params_macs_depth() {
    let net = tiny();
    net.validate(Some(1000)).unwrap();
    let s = net.shapes().unwrap();
    assert_eq!(s[1], [32, 32, 8]);
    assert_eq!(s[4], [1, 1, 8]);
    assert_eq!(s[5], [1, 1, 10]);
    assert_eq!(net.param_count(), 8 * 27 + 16 + 90);
    assert_eq!(net.macs(), 32 * 32 * 8 * 27 + 80);
    assert_eq!(net.depth(), 2);
}

#[test]
fn json_round_trip_and_tag_format() {
    let net = tiny();
    let text = net.to_json();
    assert!(text.contains("{\"type\":\"conv\",\"kernel\":3,"), "{text}");
    assert_eq!(
        text.lines().count(),
        7 + net.nodes.len(),
        "one node per line:\n{text}"
    );
    assert!(text.contains("\"op\":{\"type\":\"global_avg_pool\"}"));
    assert_eq!(Net::from_json(&text).unwrap(), net);
}

#[test]
fn conv_geometry_matches_pytorch() {
    // 32 → stride 2, k3 p1 → 16; dilated k5 d2 p4 stays 32; valid k7 p0 on 8 → 2.
    let mut b = NetBuilder::new("g", ImageShape::CIFAR10, 10);
    let a = b.conv("a", 0, 4, 3, 2).unwrap();
    assert_eq!(b.shape(a), [16, 16, 4]);
    let d = b.dw_conv("d", a, 5, 1, 2).unwrap();
    assert_eq!(b.shape(d), [16, 16, 4]);
    let p = b
        .push(
            "p",
            Op::AvgPool {
                kernel: 3,
                stride: 2,
                padding: 1,
            },
            vec![d],
        )
        .unwrap();
    assert_eq!(b.shape(p), [8, 8, 4]);
    let v = b
        .push(
            "v",
            Op::Conv {
                kernel: 7,
                stride: 1,
                dilation: 1,
                padding: 0,
                groups: 1,
                cin: 4,
                cout: 4,
                bias: true,
            },
            vec![p],
        )
        .unwrap();
    assert_eq!(b.shape(v), [2, 2, 4]);
    let f = b.linear("fc", v, 10).unwrap();
    assert_eq!(b.shape(f), [1, 1, 10]);
    let net = b.finish().unwrap();
    assert_eq!(
        net.nodes[5].op,
        Op::Linear {
            cin: 16,
            cout: 10,
            bias: true
        }
    );
}

/// Each error kind names the node it is about (index and name appear in the message).
#[test]
fn errors_name_the_node() {
    fn expect(net: &Net, idx: usize, check: impl Fn(&ArchError) -> bool) {
        let err = net.validate(None).unwrap_err();
        assert!(check(&err), "unexpected error {err:?}");
        let (i, name) = err.node().expect("node-level error");
        assert_eq!(i, idx, "{err}");
        assert_eq!(name, net.nodes[idx].name);
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("node {idx} '{}'", net.nodes[idx].name)),
            "{msg}"
        );
    }
    let base = tiny();

    let mut n = base.clone();
    n.nodes[1].op = conv(3, 1, 4, 8);
    expect(&n, 1, |e| {
        matches!(
            e,
            ArchError::ChannelMismatch {
                expected: 4,
                got: 3,
                ..
            }
        )
    });

    let mut n = base.clone();
    n.nodes[2].op = Op::BatchNorm { channels: 7 };
    expect(&n, 2, |e| matches!(e, ArchError::ChannelMismatch { .. }));

    let mut n = base.clone();
    n.nodes[5].op = Op::Linear {
        cin: 9,
        cout: 10,
        bias: true,
    };
    expect(&n, 5, |e| matches!(e, ArchError::ChannelMismatch { .. }));

    for k in [0, 2, 4, 9] {
        let mut n = base.clone();
        n.nodes[1].op = conv(k, 1, 3, 8);
        expect(
            &n,
            1,
            |e| matches!(e, ArchError::UnsupportedKernel { kernel, .. } if *kernel == k),
        );
    }

    let mut n = base.clone();
    n.nodes[1].op = Op::Conv {
        kernel: 3,
        stride: 3,
        dilation: 1,
        padding: 1,
        groups: 1,
        cin: 3,
        cout: 8,
        bias: false,
    };
    expect(&n, 1, |e| {
        matches!(e, ArchError::UnsupportedGeometry { .. })
    });

    let mut n = base.clone();
    n.nodes[1].op = Op::Conv {
        kernel: 3,
        stride: 1,
        dilation: 1,
        padding: 1,
        groups: 2,
        cin: 3,
        cout: 8,
        bias: false,
    };
    expect(&n, 1, |e| {
        matches!(e, ArchError::UnsupportedGeometry { .. })
    });

    // Budget: a net-level error naming the count and the budget.
    let err = base.validate(Some(10)).unwrap_err();
    assert_eq!(
        err,
        ArchError::BudgetExceeded {
            net: "tiny".into(),
            params: base.param_count(),
            budget: 10
        }
    );
    assert!(err.to_string().contains(&format!(
        "{} parameters exceed the budget of 10",
        base.param_count()
    )));

    // Disconnected: a side branch that never reaches the classifier.
    let mut n = base.clone();
    n.nodes.insert(
        4,
        Node {
            name: "dead".into(),
            op: Op::Relu { six: true },
            inputs: vec![1],
        },
    );
    n.nodes[5].inputs = vec![3];
    n.nodes[6].inputs = vec![5];
    expect(&n, 4, |e| matches!(e, ArchError::Disconnected { .. }));

    // Wrong input counts.
    let mut n = base.clone();
    n.nodes[3].inputs = vec![1, 2];
    expect(&n, 3, |e| {
        matches!(e, ArchError::WrongInputCount { got: 2, .. })
    });
    let mut n = base.clone();
    n.nodes[3] = Node {
        name: "sum".into(),
        op: Op::Add,
        inputs: vec![2],
    };
    expect(&n, 3, |e| {
        matches!(e, ArchError::WrongInputCount { got: 1, .. })
    });
    let mut n = base.clone();
    n.nodes[3] = Node {
        name: "sum".into(),
        op: Op::Add,
        inputs: vec![2, 2],
    };
    expect(&n, 3, |e| matches!(e, ArchError::DuplicateInput { .. }));
    let mut n = base.clone();
    n.nodes[3] = Node {
        name: "sum".into(),
        op: Op::Add,
        inputs: vec![0, 2],
    };
    expect(&n, 3, |e| matches!(e, ArchError::ShapeMismatch { .. }));

    // Forward reference and misplaced input.
    let mut n = base.clone();
    n.nodes[2].inputs = vec![4];
    expect(&n, 2, |e| {
        matches!(e, ArchError::BadInputIndex { input: 4, .. })
    });
    let mut n = base.clone();
    n.nodes[0].op = Op::Relu { six: false };
    expect(&n, 0, |e| matches!(e, ArchError::MisplacedInput { .. }));
    let mut n = base.clone();
    n.nodes[3] = Node {
        name: "again".into(),
        op: Op::Input,
        inputs: vec![],
    };
    expect(&n, 3, |e| matches!(e, ArchError::MisplacedInput { .. }));

    // Shape collapse: 7x7 valid conv on a 4x4 input.
    let mut n = base.clone();
    n.input = ImageShape { h: 4, w: 4, c: 3 };
    n.nodes[1].op = Op::Conv {
        kernel: 7,
        stride: 1,
        dilation: 1,
        padding: 1,
        groups: 1,
        cin: 3,
        cout: 8,
        bias: false,
    };
    expect(&n, 1, |e| {
        matches!(e, ArchError::ShapeCollapse { h: 0, w: 0, .. })
    });

    // Classifier.
    let mut n = base.clone();
    n.classes = 5;
    expect(&n, 5, |e| {
        matches!(e, ArchError::BadClassifier { classes: 5, .. })
    });

    let mut n = base.clone();
    n.nodes[3].op = Op::Dropout { p: 1.0 };
    expect(&n, 3, |e| matches!(e, ArchError::InvalidValue { .. }));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
    /// Validation never panics, whatever a JSON file says: mutate one field of a real net to an
    /// arbitrary value; the result is `Ok` or an error whose node index is in range.
    #[test]
    fn validate_never_panics(seed in 0u64..1000, node in 0usize..1000, field in 0usize..8,
                             value in proptest::prelude::any::<usize>(), small in 0usize..9) {
        let mut net = crate::splits::Split::Test
            .net(ImageShape::FASHION_MNIST, 10, seed, 0)
            .unwrap();
        let i = node % net.nodes.len();
        let v = if value % 2 == 0 { small } else { value };
        match (&mut net.nodes[i].op, field) {
            (_, 0) => net.nodes[i].inputs.push(v),
            (_, 1) => net.nodes[i].inputs.clear(),
            (Op::Conv { kernel, .. }, 2) => *kernel = v,
            (Op::Conv { cin, .. }, 3) => *cin = v,
            (Op::Conv { groups, .. }, 4) => *groups = v,
            (Op::Conv { padding, stride, .. }, 5) => (*padding, *stride) = (v, small),
            (Op::BatchNorm { channels }, _) => *channels = v,
            (Op::Linear { cin, cout, .. }, _) => (*cin, *cout) = (v, small),
            (Op::MaxPool { kernel, stride, .. } | Op::AvgPool { kernel, stride, .. }, _) => {
                (*kernel, *stride) = (small, v)
            }
            (_, 6) => net.input.h = v,
            (_, 7) => net.classes = v,
            _ => net.nodes[i].op = Op::Concat,
        }
        match net.validate(Some(250_000)) {
            Ok(()) => {
                let _ = (net.macs(), net.depth(), net.param_count());
            }
            Err(e) => {
                if let Some((k, _)) = e.node() {
                    proptest::prop_assert!(k < net.nodes.len());
                }
                let _ = e.to_string();
            }
        }
    }
}

#[test]
fn json_errors_are_reported() {
    assert!(matches!(Net::from_json("{"), Err(ArchError::Json(_))));
    let bad = tiny().to_json().replace("\"batch_norm\"", "\"layer_norm\"");
    assert!(matches!(Net::from_json(&bad), Err(ArchError::Json(_))));
}
