"""Prompts worded unlike the training captions, each with the attribute it asks for (issue 43).

Written by hand on 2026-12-04, before any alignment run, and committed first: the align bench reports
how often each reads as asked before and after reward fine-tuning, so a model that only learnt the
captions' own words shows it. Each entry is ``(prompt, asked)``: the attribute is asked present
(``True``) or absent (``False``); the other attributes are left to the model and not scored.
"""

from __future__ import annotations

PARAPHRASES: dict[str, dict[str, tuple[tuple[str, bool], ...]]] = {
    "skin": {
        "melanoma": (
            ("Dermatoscopic photograph of a malignant melanocytic tumour", True),
            ("Close-up skin lesion, biopsy-proven melanoma, asymmetric and irregularly pigmented", True),
            ("Epiluminescence microscopy of a cutaneous melanoma", True),
            ("A suspicious pigmented lesion that turned out to be melanoma, dermatoscope view", True),
            ("Dermatoscopy showing an invasive melanoma with irregular borders", True),
            ("Dermatoscopic photograph of a harmless common mole", False),
            ("Close-up of a benign melanocytic naevus, regular and symmetric", False),
            ("Epiluminescence microscopy of an ordinary benign mole", False),
        ),
        "ruler": (
            ("Dermatoscopic photograph of a mole next to a millimetre scale", True),
            ("Skin lesion photographed beside a measuring tape with tick marks", True),
            ("Dermoscopy with a graduated scale along the edge of the picture", True),
            ("A pigmented lesion with a centimetre rule laid next to it for size", True),
            ("Dermatoscope image showing tick-marked measurement bars at the border", True),
            ("Dermatoscopic photograph of a mole, no measuring scale anywhere in view", False),
            ("Skin lesion photographed without any ruler or size reference", False),
        ),
        "hair": (
            ("Dermatoscopic photograph of a mole on a hairy forearm", True),
            ("Skin lesion partly covered by dark body hairs", True),
            ("Dermoscopy with thick hair shafts crossing the lesion", True),
            ("A pigmented lesion on an unshaved scalp, strands running across it", True),
            ("Dermatoscope image obscured by several long dark hairs", True),
            ("Dermatoscopic photograph of a mole on clean-shaven skin", False),
            ("Skin lesion with no hairs crossing the field", False),
        ),
        "ink": (
            ("Dermatoscopic photograph of a mole circled with a purple skin marker", True),
            ("Skin lesion with surgical pen lines drawn around it before excision", True),
            ("Dermoscopy showing violet marker ink on the surrounding skin", True),
            ("A pigmented lesion outlined by the surgeon in marker pen", True),
            ("Dermatoscope image with gentian violet marks beside the lesion", True),
            ("Dermatoscopic photograph of an unmarked mole, no pen on the skin", False),
            ("Skin lesion with no surgical marking drawn around it", False),
        ),
        "gel_bubbles": (
            ("Dermatoscopic photograph of a mole with air trapped in the immersion fluid", True),
            ("Skin lesion seen through contact gel full of small round bubbles", True),
            ("Dermoscopy with bright circular bubble artifacts over the lesion", True),
            ("A pigmented lesion under oil immersion with trapped air pockets", True),
            ("Dermatoscope image speckled with bubbles in the coupling gel", True),
            ("Dermatoscopic photograph of a mole, immersion fluid clear of bubbles", False),
        ),
        "vignette": (
            ("Dermatoscopic photograph of a mole with a black circular frame", True),
            ("Skin lesion seen through the round aperture of the dermatoscope, edges black", True),
            ("Dermoscopy with heavy shading towards the corners of the frame", True),
            ("A pigmented lesion in a circular field of view, the corners unlit", True),
            ("Dermatoscope image darkening towards its edges", True),
            ("Dermatoscopic photograph of a mole, evenly lit to the corners", False),
        ),
    },
    "cxr": {
        "pleural_effusion": (
            ("Frontal chest radiograph with fluid layering at both lung bases", True),
            ("PA chest film, meniscus sign at the costophrenic angles", True),
            ("Chest radiograph showing bilateral pleural fluid collections", True),
            ("Radiograph of the thorax with hazy opacification of the lower hemithoraces from fluid", True),
            ("Frontal chest film, fluid in the pleural spaces", True),
            ("Frontal chest radiograph with sharp, clear costophrenic angles", False),
            ("PA chest film, no fluid in either pleural space", False),
        ),
        "cardiomegaly": (
            ("Frontal chest radiograph with a cardiothoracic ratio above one half", True),
            ("PA chest film showing a globally enlarged cardiac shadow", True),
            ("Chest radiograph, the heart is big", True),
            ("Radiograph of the thorax with a widened cardiac outline", True),
            ("Frontal chest film demonstrating an increased heart size", True),
            ("Frontal chest radiograph, heart size within normal limits", False),
            ("PA chest film with a normal cardiothoracic ratio", False),
        ),
        "support_devices": (
            ("Frontal chest radiograph of an ICU patient with lines and tubes in place", True),
            ("Portable chest film with medical hardware projecting over the chest", True),
            ("Chest radiograph showing indwelling catheters and tubes", True),
            ("Radiograph of the thorax with several monitoring and support lines", True),
            ("Frontal chest film with iatrogenic devices in situ", True),
            ("Frontal chest radiograph with no lines, tubes or hardware", False),
            ("PA chest film, no medical devices projected over the chest", False),
        ),
        "pacemaker": (
            ("Frontal chest radiograph with a cardiac pacing generator in the left upper chest", True),
            ("Chest film showing a pacer box with leads into the heart", True),
            ("Radiograph of the thorax, permanent pacing system in place", True),
            ("Frontal chest film with an implanted pulse generator and transvenous leads", True),
            ("Chest radiograph with a subcutaneous pacemaker over the pectoral region", True),
            ("Frontal chest radiograph, no pacing device", False),
        ),
        "ett": (
            ("Frontal chest radiograph of an intubated patient, tube tip above the carina", True),
            ("Chest film with an airway tube in the trachea", True),
            ("Radiograph of the thorax showing a tracheal tube in good position", True),
            ("Portable chest film of a ventilated patient with an orotracheal tube", True),
            ("Frontal chest film, the patient is on a ventilator via a tube in the windpipe", True),
            ("Frontal chest radiograph of a patient breathing unaided, no airway tube", False),
        ),
        "cvc": (
            ("Frontal chest radiograph with a right internal jugular catheter, tip in the superior vena cava", True),
            ("Chest film showing a subclavian venous catheter", True),
            ("Radiograph of the thorax with a central catheter ending at the cavoatrial junction", True),
            ("Frontal chest film with a jugular line in place", True),
            ("Chest radiograph showing a peripherally inserted catheter reaching the SVC", True),
            ("Frontal chest radiograph, no venous catheter", False),
        ),
        "ngt": (
            ("Frontal chest radiograph with a gastric tube passing below the diaphragm", True),
            ("Chest film showing a feeding catheter down the oesophagus into the stomach", True),
            ("Radiograph of the thorax with an orogastric tube in place", True),
            ("Frontal chest film, a tube runs through the nose to the stomach", True),
            ("Chest radiograph with an enteral feeding line crossing the diaphragm", True),
            ("Frontal chest radiograph, no tube in the oesophagus", False),
        ),
        "female": (
            ("Frontal chest radiograph of a woman", True),
            ("PA chest film of an adult female, breast shadows over the lower zones", True),
            ("Chest radiograph of a 60-year-old lady", True),
            ("Radiograph of the thorax, female patient", True),
            ("Frontal chest film of a middle-aged woman", True),
            ("Frontal chest radiograph of a man", False),
            ("PA chest film of an adult male", False),
            ("Chest radiograph of a 60-year-old gentleman", False),
        ),
    },
}


def paraphrases(domain: str) -> list[tuple[str, str, bool]]:
    """Every ``(attribute, prompt, asked)`` of ``domain``, in the order written."""
    if domain not in PARAPHRASES:
        raise ValueError(f"no paraphrases for domain {domain!r}; known: {', '.join(PARAPHRASES)}")
    return [(attribute, prompt, asked) for attribute, entries in PARAPHRASES[domain].items()
            for prompt, asked in entries]
