"""nnU-Net v2 backend: export a manifest as an nnU-Net dataset, train and fine-tune 3d_fullres in-process, and predict
with a livermets nnU-Net model folder or any nnU-Net v2 result folder (alone, or liver and lesions from two models).

nnunetv2 is imported only inside the functions that need it.
"""
