//! The EfficientNet-Lite0 port against its ImageNet weights: the sample
//! picture `eagle.jpg` must land in ImageNet classes 21-22 (kite, bald eagle),
//! and `dog.jpg` among the dogs (151-268). Needs ../shared/weights.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use integrabner_core::image_input::{decode, encoder_input, Fit};
use integrabner_models::efficientnet::{normalize, EfficientNet, EfficientNetConfig};
use integrabner_models::encoder::EncoderConfig;
use std::path::Path;

const WEIGHTS: &str = "../../../shared/weights/efficientnet-lite0";

/// ImageNet class probabilities of a picture.
fn classify(model: &EfficientNet, picture: &str) -> Vec<f32> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(WEIGHTS);
    let img = decode(&std::fs::read(dir.join(picture)).unwrap()).unwrap();
    let pixels = encoder_input(&img, 224, Fit::CenterCrop);
    let x = normalize(&Tensor::from_vec(pixels, (1, 3, 224, 224), &Device::Cpu).unwrap()).unwrap();
    let probs = candle_nn::ops::softmax(&model.forward(&x).unwrap(), D::Minus1).unwrap();
    probs.flatten_all().unwrap().to_vec1().unwrap()
}

fn top(probs: &[f32]) -> usize {
    (0..probs.len()).fold(0, |a, i| if probs[i] > probs[a] { i } else { a })
}

#[test]
fn efficientnet_lite0_recognizes_the_eagle_and_the_dog() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(WEIGHTS);
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(
            &[dir.join("efficientnet-lite0.safetensors")],
            DType::F32,
            &Device::Cpu,
        )
        .unwrap()
    };
    let model = EfficientNet::load(vb, &EfficientNetConfig::lite0()).unwrap();
    let eagle = classify(&model, "eagle.jpg");
    assert!(
        (21..=22).contains(&top(&eagle)),
        "eagle.jpg -> class {}",
        top(&eagle)
    );
    // Kite and bald eagle together take most of the mass, not a near tie.
    assert!(
        eagle[21] + eagle[22] > 0.5,
        "kite {} + eagle {}",
        eagle[21],
        eagle[22]
    );
    let dog = classify(&model, "dog.jpg");
    assert!(
        (151..=268).contains(&top(&dog)),
        "dog.jpg -> class {}",
        top(&dog)
    );
}

#[test]
fn image_model_gives_probabilities_and_an_exact_heat_map_per_output() {
    use integrabner_models::image_model::{GreyLayoutConfig, ImageModel, ImageModelConfig};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(WEIGHTS);
    let mut tensors =
        candle_core::safetensors::load(dir.join("efficientnet-lite0.safetensors"), &Device::Cpu)
            .unwrap();
    let encoder = EfficientNetConfig {
        classes: 0,
        pooled_stages: vec![1, 2, 3, 4, 5, 6],
        ..EfficientNetConfig::lite0()
    };
    let width = encoder.features();
    assert_eq!(width, 1280 + 24 + 40 + 80 + 112 + 192 + 320);
    // Output 0 reads a channel of the 56x56 stage map and one of the head's
    // 7x7 map; output 1 reads another head channel.
    let mut w = vec![0f32; 2 * width];
    w[5] = 1.0;
    w[width - 1280 + 3] = 0.5;
    w[width + width - 1280 + 700] = 1.0;
    tensors.insert(
        "image_head.weight".into(),
        Tensor::from_vec(w, (2, width), &Device::Cpu).unwrap(),
    );
    tensors.insert(
        "image_head.bias".into(),
        Tensor::new(&[-1f32, 0.5], &Device::Cpu).unwrap(),
    );
    // The layout head: output 0 also reads grid cell 20 of 14x14 (row 1,
    // column 6), output 1 nothing; each with a bias.
    let mut layout_w = vec![0f32; 2 * 196];
    layout_w[20] = 1.0;
    tensors.insert(
        "grey_layout_head.weight".into(),
        Tensor::from_vec(layout_w, (2, 196), &Device::Cpu).unwrap(),
    );
    tensors.insert(
        "grey_layout_head.bias".into(),
        Tensor::new(&[0.25f32, -0.75], &Device::Cpu).unwrap(),
    );
    let config = ImageModelConfig {
        encoder: EncoderConfig::EfficientNet(encoder),
        input_size: 224,
        outputs: vec!["abnormal".into(), "Cardiomegaly".into()],
        thresholds: vec![0.5, 0.5],
        vocabulary_version: "test".into(),
        grey_layout: Some(GreyLayoutConfig {
            side: 14,
            weight: 0.5,
        }),
    };
    let model = ImageModel::load(
        VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu),
        &config,
    )
    .unwrap();
    let img = decode(&std::fs::read(dir.join("dog.jpg")).unwrap()).unwrap();
    let pixels = encoder_input(&img, 224, Fit::Pad);
    // The layout, computed here by hand: grey levels averaged over 16x16
    // blocks, standardized.
    let mut layout = vec![0f32; 196];
    for (i, v) in pixels.iter().enumerate() {
        let (y, x) = ((i % (224 * 224)) / 224, i % 224);
        layout[(y / 16) * 14 + x / 16] += v / (3.0 * 256.0);
    }
    let mean = layout.iter().sum::<f32>() / 196.0;
    let std = (layout.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 196.0 + 1e-6).sqrt();
    let cell_20 = (layout[20] - mean) / std;
    let rgb = Tensor::from_vec(pixels, (3, 224, 224), &Device::Cpu).unwrap();
    let out = model.forward(&rgb).unwrap();
    let maps = &out.activations.feature_maps;
    let sizes: Vec<usize> = maps.iter().map(|m| m.dim(3).unwrap()).collect();
    assert_eq!(sizes, [56, 28, 14, 14, 7, 7, 7]);
    assert_eq!(out.probabilities.len(), 2);
    let features: Vec<f32> = integrabner_models::pooling::pool(maps)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(features.len(), width);
    let logits = [
        features[5] + 0.5 * features[width - 1280 + 3] - 1.0 + 0.5 * (cell_20 + 0.25),
        features[width - 1280 + 700] + 0.5 + 0.5 * -0.75,
    ];
    for (k, logit) in logits.into_iter().enumerate() {
        let p = out.probabilities[k];
        assert!(
            (p - 1.0 / (1.0 + (-logit).exp())).abs() < 1e-5,
            "output {k}"
        );
        // The cells average to the logit less the biases: the map is exact.
        let grid = model.class_activation(&out.activations, k).unwrap();
        assert_eq!((grid.len(), grid[0].len()), (7, 7));
        let mean = grid.concat().iter().sum::<f32>() / 49.0;
        let biases = [-1.0 + 0.5 * 0.25, 0.5 + 0.5 * -0.75][k];
        assert!((mean + biases - logit).abs() < 1e-4, "output {k}");
        let map = model.heat_map(&out.activations, k).unwrap();
        let flat: Vec<f32> = map.concat();
        assert!(flat.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(flat.contains(&1.0));
    }
    // Each output reads its own channels, so the two maps differ.
    assert_ne!(
        model.heat_map(&out.activations, 0).unwrap(),
        model.heat_map(&out.activations, 1).unwrap()
    );
    // Output 0's layout cell (row 1, column 6) falls in the heat map's cell
    // (0, 3): without the layout head that cell's value would differ by
    // exactly the layout's share.
    let grid = model.class_activation(&out.activations, 0).unwrap();
    let without = model
        .class_activation(
            &integrabner_models::image_model::Activations {
                feature_maps: maps.clone(),
                grey_layout: None,
            },
            0,
        )
        .unwrap();
    for (r, (row, row_without)) in grid.iter().zip(&without).enumerate() {
        for (c, (v, v_without)) in row.iter().zip(row_without).enumerate() {
            // One layout cell of four in a heat-map cell, times 196 cells.
            let share = if (r, c) == (0, 3) {
                0.5 * cell_20 * 196.0 / 4.0
            } else {
                0.0
            };
            assert!((v - v_without - share).abs() < 1e-3, "cell ({r}, {c})");
        }
    }
}
