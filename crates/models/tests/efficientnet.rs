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
fn image_model_gives_probabilities_and_a_heat_map_per_output() {
    use integrabner_models::image_model::{ImageModel, ImageModelConfig};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(WEIGHTS);
    let mut tensors =
        candle_core::safetensors::load(dir.join("efficientnet-lite0.safetensors"), &Device::Cpu)
            .unwrap();
    // A head that reads one feature channel for output 0 and another for output 1.
    let mut w = vec![0f32; 2 * 1280];
    w[5] = 1.0;
    w[1280 + 700] = 1.0;
    tensors.insert(
        "image_head.weight".into(),
        Tensor::from_vec(w, (2, 1280), &Device::Cpu).unwrap(),
    );
    tensors.insert(
        "image_head.bias".into(),
        Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap(),
    );
    let mut encoder = EfficientNetConfig::lite0();
    encoder.classes = 0;
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
    assert_eq!(out.probabilities.len(), 2);
    assert!(out.probabilities.iter().all(|p| (0.0..=1.0).contains(p)));
    for k in 0..2 {
        let map = model.heat_map(&out.feature_map, k).unwrap();
        assert_eq!((map.len(), map[0].len()), (7, 7));
        let flat: Vec<f32> = map.concat();
        assert!(flat.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(flat.contains(&1.0));
    }
    // Each output's map is its own channel, so the two differ.
    assert_ne!(
        model.heat_map(&out.feature_map, 0).unwrap(),
        model.heat_map(&out.feature_map, 1).unwrap()
    );
}
