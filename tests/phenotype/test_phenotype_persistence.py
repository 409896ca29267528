"""Model folders: skops/JSON round trip reproduces in-memory predictions; foreign types are refused."""

from __future__ import annotations

import numpy as np
import pytest
import skops.io as sio
from sklearn.svm import SVC

from livermets.errors import UserInputError
from livermets.featuretable import FEATURE_COLUMNS, read_feature_table
from livermets.phenotype.persistence import load_model_folder
from livermets.phenotype.training import predict_with_folder, train_model, train_to_folder

CSV = ("nih_mip_msclc", "Final_ResampledClassificationData.csv")


def test_grouped_model_roundtrip(shared_data, tmp_path):
    frame = read_feature_table(shared_data(*CSV), targets=["NE_Score", "NE_Class", "Group"])
    models, config = train_model(frame, protocol="grouped", model="LR", n_jobs=1)
    train_to_folder(frame, tmp_path / "m", protocol="grouped", model="LR", n_jobs=1)
    assert not list((tmp_path / "m").glob("*.pkl"))
    test = frame.query("Group == 'test'")
    expected = np.mean([m.predict_proba(test[FEATURE_COLUMNS].to_numpy())[:, 1] for m in models], axis=0)
    got = predict_with_folder(tmp_path / "m", test.drop(columns=["Group", "NE_Class"]), "test")
    assert np.allclose(got["probability"], expected)
    assert len(config["selected_features_per_fold"]) == 5 and "versions" in config["provenance"]
    assert config["training_ranges"]["Num_Lesions"][0] >= 1


def test_untrusted_type_refused(tmp_path):
    folder = tmp_path / "evil"
    folder.mkdir()
    sio.dump(SVC(), folder / "fold_1.skops")
    (folder / "config.json").write_text('{"folds": [{"skops": "fold_1.skops", "xgboost": null}]}')
    with pytest.raises(UserInputError, match="untrusted type sklearn.svm"):
        load_model_folder(folder)


def test_stored_cv_auc_is_the_out_of_fold_auc_of_the_fold_models(shared_data):
    from sklearn.metrics import roc_auc_score

    from livermets.phenotype.grouped import grouped_splits

    frame = read_feature_table(shared_data(*CSV), targets=["NE_Score", "NE_Class", "Group"])
    models, config = train_model(frame, protocol="grouped", model="LR", n_jobs=1, seed=3)
    dev = frame.query("Group != 'test'")
    y = dev["NE_Class"].to_numpy().astype(int)
    splits = grouped_splits(y, dev["unique_pt"].astype(str).to_numpy(), n_splits=5, seed=3)
    oof = np.full(y.size, np.nan)
    for model, (_, test) in zip(models, splits, strict=True):  # each fold model scores only its held-out patients
        oof[test] = model.predict_proba(dev[FEATURE_COLUMNS].to_numpy()[test])[:, 1]
    cv = config["cv_performance"]
    assert cv["auc"] == pytest.approx(roc_auc_score(y, oof), abs=1e-12)
    assert (cv["n_patients"], cv["n_rows"], cv["n_folds"]) == (dev["unique_pt"].nunique(), len(dev), 5)
    _, paper = train_model(frame, protocol="paper", model="LR", n_jobs=1)
    assert paper["cv_performance"] is None
