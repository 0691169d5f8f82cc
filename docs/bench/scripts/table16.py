import json
a=json.load(open('work/test-pdsc.json'))['sets']; b=json.load(open('work/test-pd.json'))['sets']
c=json.load(open('work/test-pdsp-single.json'))['sets']; d=json.load(open('work/test-pdsp-ens.json'))['sets']
print('| test set | n | grey | mean colour | PD, 1 net | PD, ensemble | PDS 8 groups, 1 net | PDS 8 groups, ensemble | PDS 12 classes, 1 net | **PDS 12 classes, ensemble (bundled)** | colourfulness: bundled (truth) |')
print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
for k in a:
    r,q,s,e=a[k],b[k],c[k],d[k]
    print(f"| {k} | {r['n']} | {r['grey']['psnr_mean']:.2f} | {r['mean_colour']['psnr_mean']:.2f} | {q['pd-single']['psnr_mean']:.2f} | {q['pd-ens']['psnr_mean']:.2f} | {r['pdsc-single']['psnr_mean']:.2f} | {r['pdsc-ens']['psnr_mean']:.2f} | {s['pdsp-single']['psnr_mean']:.2f} | **{e['bundled']['psnr_mean']:.2f}** | {e['bundled']['colourfulness']:.1f} ({r['truth_colourfulness']:.1f}) |")
print()
print('| test set | semantic gain, 1 net | semantic gain, ensemble | ensemble - 1 net | bundled - mean colour | bundled - grey | bundled median | bundled SSIM |')
print('| --- | --- | --- | --- | --- | --- | --- | --- |')
for k in a:
    r,q,s,e=a[k],b[k],c[k],d[k]
    print(f"| {k} | {s['pdsp-single']['psnr_mean']-q['pd-single']['psnr_mean']:+.2f} | {e['bundled']['psnr_mean']-q['pd-ens']['psnr_mean']:+.2f} | {e['bundled']['psnr_mean']-s['pdsp-single']['psnr_mean']:+.2f} | {e['bundled']['minus_mean_colour_db']:+.2f} | {e['bundled']['minus_grey_db']:+.2f} | {e['bundled']['psnr_median']:.2f} | {e['bundled']['ssim_mean']:.3f} |")
