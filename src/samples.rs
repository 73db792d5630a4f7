//! Sample reports offered in the page, written in the style of OpenI reports
//! (not copied from the corpus, whose licence forbids redistribution of
//! derivatives).

pub struct Sample {
    pub name: &'static str,
    pub text: &'static str,
}

pub const SAMPLES: [Sample; 3] = [
    Sample {
        name: "Effusion, no pneumothorax",
        text: "FINDINGS: The heart is mildly enlarged. Small right pleural effusion with \
adjacent atelectasis. No pneumothorax. Degenerative changes of the thoracic spine.\n\
IMPRESSION: Cardiomegaly. Small right pleural effusion. No pneumothorax.",
    },
    Sample {
        name: "Normal study",
        text: "INDICATION: Cough.\nFINDINGS: The lungs are clear. Heart size and \
mediastinal contours are within normal limits. No pleural effusion or pneumothorax.\n\
IMPRESSION: No acute cardiopulmonary abnormality.",
    },
    Sample {
        name: "Uncertain opacity, devices",
        text: "FINDINGS: Right IJ central venous catheter tip in the SVC. Sternotomy wires. \
Patchy opacity in the left lower lobe, cannot exclude pneumonia. Calcified granuloma in the \
right upper lobe.\nIMPRESSION: Left basilar opacity, possibly pneumonia.",
    },
];
