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
    use integrabner_models::image_model::{ImageModel, ImageModelConfig};
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
    let config = ImageModelConfig {
        encoder: EncoderConfig::EfficientNet(encoder),
        input_size: 224,
        outputs: vec!["abnormal".into(), "Cardiomegaly".into()],
        thresholds: vec![0.5, 0.5],
        vocabulary_version: "test".into(),
    };
    let model = ImageModel::load(
        VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu),
        &config,
    )
    .unwrap();
    let img = decode(&std::fs::read(dir.join("dog.jpg")).unwrap()).unwrap();
    let rgb = Tensor::from_vec(
        encoder_input(&img, 224, Fit::Pad),
        (3, 224, 224),
        &Device::Cpu,
    )
    .unwrap();
    let out = model.forward(&rgb).unwrap();
    let sizes: Vec<usize> = out.feature_maps.iter().map(|m| m.dim(3).unwrap()).collect();
    assert_eq!(sizes, [56, 28, 14, 14, 7, 7, 7]);
    assert_eq!(out.probabilities.len(), 2);
    let features: Vec<f32> = integrabner_models::encoder::pool(&out.feature_maps)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(features.len(), width);
    let logits = [
        features[5] + 0.5 * features[width - 1280 + 3] - 1.0,
        features[width - 1280 + 700] + 0.5,
    ];
    for (k, logit) in logits.into_iter().enumerate() {
        let p = out.probabilities[k];
        assert!(
            (p - 1.0 / (1.0 + (-logit).exp())).abs() < 1e-5,
            "output {k}"
        );
        // The cells average to the logit less the bias: the map is exact.
        let grid = model.class_activation(&out.feature_maps, k).unwrap();
        assert_eq!((grid.len(), grid[0].len()), (7, 7));
        let mean = grid.concat().iter().sum::<f32>() / 49.0;
        let bias = [-1.0, 0.5][k];
        assert!((mean + bias - logit).abs() < 1e-4, "output {k}");
        let map = model.heat_map(&out.feature_maps, k).unwrap();
        let flat: Vec<f32> = map.concat();
        assert!(flat.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(flat.contains(&1.0));
    }
    // Each output reads its own channels, so the two maps differ.
    assert_ne!(
        model.heat_map(&out.feature_maps, 0).unwrap(),
        model.heat_map(&out.feature_maps, 1).unwrap()
    );
}
